/**
 * The ssh_config vocabulary: every keyword OpenSSH 9.2's readconf.c knows
 * (its `keywords[]` table, including the deprecated and unsupported entries it
 * still accepts), how ssh_config(5) spells it, how OpenSSH reads it, and what
 * safetunnel does with it. The parser, the Match evaluator, the settings
 * checks and the command line all ask this table; nothing else lists keywords.
 * Pure.
 */

/**
 * What safetunnel does with a keyword once it applies to the host.
 * - `used`: turned into settings (config/settings.ts) or honoured by the
 *   parser itself (Host, Match, Include).
 * - `refused`: safetunnel cannot honour it, and skipping it could connect
 *   another way than configured or trust a key the user rejects, so a value
 *   other than `offValues` stops the connection with `reason` and `fix`.
 * - `warned`: not honoured, but skipping it is safe; a value other than
 *   `offValues` earns a warning saying what safetunnel does `instead`.
 * - `ignored`: meaningless for a tunnel (terminals, X11, control sockets...)
 *   or left to OpenSSH's defaults; a `-o` for it earns a warning.
 */
export type KeywordTreatment =
  | { kind: "used" }
  | {
    kind: "refused";
    /** Lower-case values that leave the feature off, so the line refuses nothing. */
    offValues: readonly string[];
    /** Follows "and safetunnel ", e.g. "cannot run it". */
    reason: string;
    /** Follows the reason after "; ": what to do instead. */
    fix: string;
  }
  | {
    kind: "warned";
    offValues: readonly string[];
    /** Follows "is not supported; ", e.g. "safetunnel uses its own modern defaults". */
    instead: string;
  }
  | { kind: "ignored" };

export interface KeywordInfo {
  /** Lower case, as readconf.c compares keywords (strcasecmp). */
  keyword: string;
  /** As ssh_config(5) spells it, for messages: "ProxyJump". */
  name: string;
  treatment: KeywordTreatment;
  /** Every active line adds to the list instead of the first line winning. */
  multiValued: boolean;
  /** The rest of the line is kept verbatim (readconf.c parse_command): it goes to a shell. */
  command: boolean;
  /**
   * Decides where and how we connect, or which host keys we trust: a Match
   * block we cannot evaluate may not be skipped when it sets one of these.
   */
  routing: boolean;
  /** Older spellings readconf.c still maps to this keyword, lower case. */
  aliases: readonly string[];
}

interface Traits {
  multiValued?: boolean;
  command?: boolean;
  routing?: boolean;
  aliases?: readonly string[];
}

const USED: KeywordTreatment = { kind: "used" };
const IGNORED: KeywordTreatment = { kind: "ignored" };

function row(name: string, treatment: KeywordTreatment, traits: Traits = {}): KeywordInfo {
  return {
    keyword: name.toLowerCase(),
    name,
    treatment,
    multiValued: traits.multiValued ?? false,
    command: traits.command ?? false,
    routing: traits.routing ?? false,
    aliases: traits.aliases ?? [],
  };
}

function refused(name: string, offValues: readonly string[], reason: string, fix: string, traits: Traits = {}): KeywordInfo {
  return row(name, { kind: "refused", offValues, reason, fix }, traits);
}

function warned(name: string): KeywordInfo {
  return row(name, { kind: "warned", offValues: ["none"], instead: "safetunnel uses its own modern defaults" });
}

/**
 * The table, grouped by treatment. Refused and warned keywords are listed in
 * the order their messages are reported; callers stop at the first refusal,
 * so ProxyCommand, the one that would bypass a proxy, comes first.
 */
export const KEYWORDS: readonly KeywordInfo[] = [
  // ---------------------------------------------------------------- used
  row("AddressFamily", USED, { routing: true }),
  row("BatchMode", USED),
  row("ConnectTimeout", USED),
  row("DynamicForward", USED, { multiValued: true }),
  row("ExitOnForwardFailure", USED),
  row("GatewayPorts", USED),
  row("GlobalKnownHostsFile", USED, { routing: true }),
  row("HashKnownHosts", USED),
  row("Host", USED),
  row("HostKeyAlias", USED, { routing: true }),
  // ssh_config(5) in 9.2 heads the entry "Hostname"; earlier manuals, most
  // configs and our messages write HostName.
  row("HostName", USED, { routing: true }),
  row("IdentitiesOnly", USED, { routing: true }),
  row("IdentityAgent", USED, { routing: true }),
  // IdentityFile2 is readconf.c's obsolete spelling of the same option
  // (`ssh -G` with an IdentityFile2 line prints it as identityfile).
  row("IdentityFile", USED, { multiValued: true, routing: true, aliases: ["identityfile2"] }),
  row("Include", USED),
  row("LocalForward", USED, { multiValued: true }),
  row("Match", USED),
  row("NumberOfPasswordPrompts", USED),
  row("Port", USED, { routing: true }),
  row("PreferredAuthentications", USED),
  row("ProxyJump", USED, { routing: true }),
  row("RemoteForward", USED, { multiValued: true }),
  row("ServerAliveCountMax", USED),
  row("ServerAliveInterval", USED),
  row("StrictHostKeyChecking", USED, { routing: true }),
  row("User", USED, { routing: true }),
  // Several files on one line, but the first line wins (readconf.c keeps the
  // first active line's list), so these are not multi-valued.
  row("UserKnownHostsFile", USED, { routing: true }),

  // ------------------------------------------------------------ refused
  // Ignoring ProxyCommand would connect directly (and resolve HostName with
  // the local DNS) when the user asked to go through a proxy or Tor.
  refused(
    "ProxyCommand",
    ["none"],
    "cannot run it",
    "connecting directly would bypass that proxy. Use ProxyJump instead, or remove ProxyCommand for this host",
    { command: true, routing: true },
  ),
  // ssh would re-read the config for the canonical name, where a Host block
  // may route through a proxy; resolving without it could connect directly.
  // readconf.c's multistate_canonicalizehostname: no and false are off.
  refused(
    "CanonicalizeHostname",
    ["no", "false"],
    "does not canonicalize",
    "give the full host name and remove CanonicalizeHostname for this host",
    { routing: true },
  ),
  // Ignoring these would accept host keys the user rejects.
  refused(
    "KnownHostsCommand",
    ["none"],
    "cannot run it",
    "put the host's key in known_hosts instead (ssh-keyscan), or remove the setting for this host",
    { command: true, routing: true },
  ),
  refused(
    "RevokedHostKeys",
    ["none"],
    "cannot read it",
    "mark revoked keys with @revoked lines in known_hosts instead, or remove the setting for this host",
    { routing: true },
  ),

  // ------------------------------------------------------------- warned
  // Algorithm choices: safetunnel negotiates from its own lists
  // (ssh/connection.ts), which connects no other way; the user hears that
  // theirs is not honoured.
  warned("Ciphers"),
  warned("KexAlgorithms"),
  warned("MACs"),
  warned("HostKeyAlgorithms"),

  // ------------------------------------------------------------ ignored
  row("AddKeysToAgent", IGNORED),
  // Skipping a block that binds to a source address could leave by another
  // interface than configured.
  row("BindAddress", IGNORED, { routing: true }),
  row("BindInterface", IGNORED),
  row("CanonicalDomains", IGNORED),
  row("CanonicalizeFallbackLocal", IGNORED),
  row("CanonicalizeMaxDots", IGNORED),
  row("CanonicalizePermittedCNAMEs", IGNORED),
  row("CASignatureAlgorithms", IGNORED),
  row("CertificateFile", IGNORED, { multiValued: true }),
  row("CheckHostIP", IGNORED),
  row("ClearAllForwardings", IGNORED),
  row("Compression", IGNORED),
  row("ConnectionAttempts", IGNORED),
  row("ControlMaster", IGNORED),
  row("ControlPath", IGNORED),
  row("ControlPersist", IGNORED),
  row("EnableEscapeCommandline", IGNORED),
  row("EnableSSHKeysign", IGNORED),
  row("EscapeChar", IGNORED),
  row("FingerprintHash", IGNORED),
  row("ForkAfterAuthentication", IGNORED),
  row("ForwardAgent", IGNORED),
  row("ForwardX11", IGNORED),
  row("ForwardX11Timeout", IGNORED),
  row("ForwardX11Trusted", IGNORED),
  row("GSSAPIAuthentication", IGNORED),
  row("GSSAPIDelegateCredentials", IGNORED),
  row("HostbasedAcceptedAlgorithms", IGNORED, { aliases: ["hostbasedkeytypes"] }),
  row("HostbasedAuthentication", IGNORED),
  row("IgnoreUnknown", IGNORED),
  row("IPQoS", IGNORED),
  row("KbdInteractiveAuthentication", IGNORED, {
    aliases: ["challengeresponseauthentication", "skeyauthentication", "tisauthentication"],
  }),
  row("KbdInteractiveDevices", IGNORED),
  row("LocalCommand", IGNORED, { command: true }),
  row("LogLevel", IGNORED),
  row("LogVerbose", IGNORED),
  row("NoHostAuthenticationForLocalhost", IGNORED),
  row("PasswordAuthentication", IGNORED),
  row("PermitLocalCommand", IGNORED),
  row("PermitRemoteOpen", IGNORED),
  // SmartcardDevice is readconf.c's older name, mapped when built with PKCS#11
  // as distributions build it (`ssh -G` prints it as pkcs11provider).
  row("PKCS11Provider", IGNORED, { aliases: ["smartcarddevice"] }),
  row("ProxyUseFdpass", IGNORED),
  row("PubkeyAcceptedAlgorithms", IGNORED, { aliases: ["pubkeyacceptedkeytypes"] }),
  row("PubkeyAuthentication", IGNORED, { aliases: ["dsaauthentication"] }),
  row("RekeyLimit", IGNORED),
  row("RemoteCommand", IGNORED, { command: true }),
  row("RequestTTY", IGNORED),
  row("RequiredRSASize", IGNORED),
  row("SecurityKeyProvider", IGNORED),
  row("SendEnv", IGNORED, { multiValued: true }),
  row("SessionType", IGNORED),
  // OpenSSH 9.2 keeps only the first active SetEnv line (readconf.c checks
  // num_setenv), which is what a resolver's first value holds; listing it as
  // multi-valued lets callers see every line as well.
  row("SetEnv", IGNORED, { multiValued: true }),
  row("StdinNull", IGNORED),
  row("StreamLocalBindMask", IGNORED),
  row("StreamLocalBindUnlink", IGNORED),
  row("SyslogFacility", IGNORED),
  row("TCPKeepAlive", IGNORED, { aliases: ["keepalive"] }),
  row("Tunnel", IGNORED),
  row("TunnelDevice", IGNORED),
  row("UpdateHostKeys", IGNORED),
  row("VerifyHostKeyDNS", IGNORED),
  row("VisualHostKey", IGNORED),
  row("XAuthLocation", IGNORED),
  // Apple's ssh on macOS adds UseKeychain; configs shared with a Mac carry it.
  row("UseKeychain", IGNORED),
  // readconf.c still accepts these and ignores them: oIgnore (Protocol),
  // oDeprecated and oUnsupported (a debug or error line, then nothing).
  row("Protocol", IGNORED),
  row("Cipher", IGNORED),
  row("FallBackToRsh", IGNORED),
  row("GlobalKnownHostsFile2", IGNORED),
  row("RhostsAuthentication", IGNORED),
  row("UserKnownHostsFile2", IGNORED),
  row("UseRoaming", IGNORED),
  row("UseRsh", IGNORED),
  row("UsePrivilegedPort", IGNORED),
  row("AFSTokenPassing", IGNORED),
  row("KerberosAuthentication", IGNORED),
  row("KerberosTgtPassing", IGNORED),
  row("RSAAuthentication", IGNORED),
  row("RhostsRSAAuthentication", IGNORED),
  row("CompressionLevel", IGNORED),
];

const BY_KEYWORD: ReadonlyMap<string, KeywordInfo> = new Map(
  KEYWORDS.flatMap((info) => [[info.keyword, info] as const, ...info.aliases.map((alias) => [alias, info] as const)]),
);

function keywordsWhere(test: (info: KeywordInfo) => boolean): ReadonlySet<string> {
  return new Set(KEYWORDS.filter(test).map((info) => info.keyword));
}

/**
 * Keywords whose lines accumulate across every matching block instead of
 * first-wins (readconf.c appends IdentityFile, CertificateFile, the forwards,
 * SendEnv). UserKnownHostsFile and GlobalKnownHostsFile are deliberately
 * absent: OpenSSH takes several files on one line and the first line wins.
 */
export const MULTI_VALUED_KEYWORDS: ReadonlySet<string> = keywordsWhere((info) => info.multiValued);

/** Keywords whose value is the rest of the line, verbatim (readconf.c parse_command). */
export const COMMAND_KEYWORDS: ReadonlySet<string> = keywordsWhere((info) => info.command);

/** Keywords that decide where and how we connect, or which host keys we trust. */
export const ROUTING_KEYWORDS: ReadonlySet<string> = keywordsWhere((info) => info.routing);

/** Keywords safetunnel acts on (treatment `used`). */
export const USED_KEYWORDS: ReadonlySet<string> = keywordsWhere((info) => info.treatment.kind === "used");

/**
 * The table row for a keyword or one of its old spellings; case-insensitive.
 * Undefined for a word that is no ssh_config keyword at all.
 *
 * @example
 * keywordInfo("proxyjump")?.name; // "ProxyJump"
 * keywordInfo("keepalive")?.keyword; // "tcpkeepalive"
 * keywordInfo("bogus"); // undefined
 */
export function keywordInfo(keyword: string): KeywordInfo | undefined {
  return BY_KEYWORD.get(keyword.toLowerCase());
}

/**
 * Whether OpenSSH 9.2 (or Apple's ssh, for UseKeychain) accepts the word as
 * an ssh_config keyword, under its current name or an old spelling.
 *
 * @example
 * isKnownKeyword("connectionattempts"); // true
 * isKnownKeyword("prot"); // false
 */
export function isKnownKeyword(keyword: string): boolean {
  return keywordInfo(keyword) !== undefined;
}

/**
 * A known keyword that safetunnel neither uses nor checks: setting it changes
 * nothing, which a `-o` on the command line deserves to hear.
 *
 * @example
 * isIgnoredKeyword("compression"); // true
 * isIgnoredKeyword("port"); // false (used)
 * isIgnoredKeyword("ciphers"); // false (warned about when set)
 * isIgnoredKeyword("bogus"); // false (not a keyword at all)
 */
export function isIgnoredKeyword(keyword: string): boolean {
  return keywordInfo(keyword)?.treatment.kind === "ignored";
}

/**
 * The current lower-case keyword for an old spelling, as readconf.c maps
 * them (checked with `ssh -G`); any other word is returned as given.
 *
 * @example
 * currentKeyword("pubkeyacceptedkeytypes"); // "pubkeyacceptedalgorithms"
 * currentKeyword("port"); // "port"
 */
export function currentKeyword(lower: string): string {
  return BY_KEYWORD.get(lower)?.keyword ?? lower;
}

/**
 * The keyword as ssh_config(5) spells it, for messages; a word that is no
 * keyword is returned as given.
 *
 * @example
 * canonicalKeywordName("userknownhostsfile"); // "UserKnownHostsFile"
 */
export function canonicalKeywordName(keyword: string): string {
  return keywordInfo(keyword)?.name ?? keyword;
}
