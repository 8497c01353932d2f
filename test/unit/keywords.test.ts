import { test } from "node:test";
import assert from "node:assert/strict";
import {
  canonicalKeywordName,
  COMMAND_KEYWORDS,
  currentKeyword,
  isIgnoredKeyword,
  isKnownKeyword,
  keywordInfo,
  KEYWORDS,
  MULTI_VALUED_KEYWORDS,
  ROUTING_KEYWORDS,
  USED_KEYWORDS,
} from "../../src/config/keywords.ts";
import { resolveDestination, type OptionLookup } from "../../src/config/settings.ts";

/** Every name in OpenSSH 9.2p1's readconf.c `keywords[]` table (git tag V_9_2_P1), sorted. */
const READCONF_9_2 = `
addkeystoagent addressfamily afstokenpassing batchmode bindaddress bindinterface canonicaldomains
canonicalizefallbacklocal canonicalizehostname canonicalizemaxdots canonicalizepermittedcnames
casignaturealgorithms certificatefile challengeresponseauthentication checkhostip cipher ciphers
clearallforwardings compression compressionlevel connectionattempts connecttimeout controlmaster controlpath
controlpersist dsaauthentication dynamicforward enableescapecommandline enablesshkeysign escapechar
exitonforwardfailure fallbacktorsh fingerprinthash forkafterauthentication forwardagent forwardx11
forwardx11timeout forwardx11trusted gatewayports globalknownhostsfile globalknownhostsfile2
gssapiauthentication gssapidelegatecredentials hashknownhosts host hostbasedacceptedalgorithms
hostbasedauthentication hostbasedkeytypes hostkeyalgorithms hostkeyalias hostname identitiesonly
identityagent identityfile identityfile2 ignoreunknown include ipqos kbdinteractiveauthentication
kbdinteractivedevices keepalive kerberosauthentication kerberostgtpassing kexalgorithms knownhostscommand
localcommand localforward loglevel logverbose macs match nohostauthenticationforlocalhost
numberofpasswordprompts passwordauthentication permitlocalcommand permitremoteopen pkcs11provider port
preferredauthentications protocol proxycommand proxyjump proxyusefdpass pubkeyacceptedalgorithms
pubkeyacceptedkeytypes pubkeyauthentication rekeylimit remotecommand remoteforward requesttty requiredrsasize
revokedhostkeys rhostsauthentication rhostsrsaauthentication rsaauthentication securitykeyprovider sendenv
serveralivecountmax serveraliveinterval sessiontype setenv skeyauthentication smartcarddevice stdinnull
streamlocalbindmask streamlocalbindunlink stricthostkeychecking syslogfacility tcpkeepalive tisauthentication
tunnel tunneldevice updatehostkeys useprivilegedport user userknownhostsfile userknownhostsfile2 useroaming
usersh verifyhostkeydns visualhostkey xauthlocation
`.trim().split(/\s+/);

test("knows every keyword of OpenSSH 9.2's readconf.c, and only those plus Apple's UseKeychain", () => {
  assert.deepEqual(READCONF_9_2.filter((keyword) => !isKnownKeyword(keyword)), []);
  const spellings = KEYWORDS.flatMap((info) => [info.keyword, ...info.aliases]);
  assert.deepEqual(spellings.filter((keyword) => !READCONF_9_2.includes(keyword)), ["usekeychain"]);
});

test("lists each keyword and each old spelling once", () => {
  const spellings = KEYWORDS.flatMap((info) => [info.keyword, ...info.aliases]);
  assert.deepEqual(spellings.filter((keyword, index) => spellings.indexOf(keyword) !== index), []);
});

test("refuses nothing that is not a keyword", () => {
  assert.equal(isKnownKeyword("prot"), false);
  assert.equal(isKnownKeyword(""), false);
  assert.equal(keywordInfo("bogus"), undefined);
});

test("maps readconf.c's old spellings to the current keyword and leaves other words alone", () => {
  assert.deepEqual(
    [
      "challengeresponseauthentication", "skeyauthentication", "tisauthentication", "dsaauthentication", "keepalive",
      "hostbasedkeytypes", "pubkeyacceptedkeytypes", "identityfile2", "smartcarddevice",
    ].map(currentKeyword),
    [
      "kbdinteractiveauthentication", "kbdinteractiveauthentication", "kbdinteractiveauthentication", "pubkeyauthentication",
      "tcpkeepalive", "hostbasedacceptedalgorithms", "pubkeyacceptedalgorithms", "identityfile", "pkcs11provider",
    ],
  );
  assert.equal(currentKeyword("port"), "port");
  assert.equal(currentKeyword("bogus"), "bogus");
});

test("looks keywords up case-insensitively, old spellings included", () => {
  assert.equal(keywordInfo("ProxyJump")?.keyword, "proxyjump");
  assert.equal(keywordInfo("KeepAlive")?.keyword, "tcpkeepalive");
});

test("names keywords as ssh_config(5) spells them, and returns other words as given", () => {
  assert.deepEqual(
    ["hostname", "userknownhostsfile", "macs", "pkcs11provider", "ipqos", "gssapiauthentication", "canonicalizepermittedcnames"].map(canonicalKeywordName),
    ["HostName", "UserKnownHostsFile", "MACs", "PKCS11Provider", "IPQoS", "GSSAPIAuthentication", "CanonicalizePermittedCNAMEs"],
  );
  assert.equal(canonicalKeywordName("bogus"), "bogus");
});

test("calls used exactly the keywords resolveDestination reads, plus Host, Match and Include", () => {
  const asked = new Set<string>();
  const spy: OptionLookup = {
    first: (keyword) => (asked.add(keyword), undefined),
    all: (keyword) => (asked.add(keyword), []),
  };
  resolveDestination("web", spy, { homeDir: "/home/me", localUser: "me", agentSocket: undefined, platform: "linux" });
  assert.deepEqual([...USED_KEYWORDS].sort(), [...asked, "host", "include", "match"].sort());
});

test("refuses ProxyCommand, CanonicalizeHostname, KnownHostsCommand and RevokedHostKeys, and warns about the algorithm lists", () => {
  const byKind = (kind: string): string[] => KEYWORDS.filter((info) => info.treatment.kind === kind).map((info) => info.name);
  assert.deepEqual(byKind("refused"), ["ProxyCommand", "CanonicalizeHostname", "KnownHostsCommand", "RevokedHostKeys"]);
  assert.deepEqual(byKind("warned"), ["Ciphers", "KexAlgorithms", "MACs", "HostKeyAlgorithms"]);
});

test("calls a keyword ignored only when it is known and neither used, refused nor warned about", () => {
  assert.equal(isIgnoredKeyword("compression"), true);
  assert.equal(isIgnoredKeyword("connectionattempts"), true);
  assert.equal(isIgnoredKeyword("keepalive"), true);
  assert.equal(isIgnoredKeyword("port"), false);
  assert.equal(isIgnoredKeyword("proxycommand"), false);
  assert.equal(isIgnoredKeyword("ciphers"), false);
  assert.equal(isIgnoredKeyword("bogus"), false);
});

test("accumulates the keywords readconf.c appends to, but not the known_hosts file lists", () => {
  assert.deepEqual([...MULTI_VALUED_KEYWORDS].sort(), [
    "certificatefile", "dynamicforward", "identityfile", "localforward", "remoteforward", "sendenv", "setenv",
  ]);
});

test("keeps the rest of the line verbatim for the four keywords readconf.c's parse_command reads", () => {
  assert.deepEqual([...COMMAND_KEYWORDS].sort(), ["knownhostscommand", "localcommand", "proxycommand", "remotecommand"]);
});

test("counts as routing the keywords that choose the server, the path to it, the login or the trusted keys", () => {
  assert.deepEqual([...ROUTING_KEYWORDS].sort(), [
    "addressfamily", "bindaddress", "canonicalizehostname", "globalknownhostsfile", "hostkeyalias", "hostname", "identitiesonly",
    "identityagent", "identityfile", "knownhostscommand", "port", "proxycommand", "proxyjump", "revokedhostkeys",
    "stricthostkeychecking", "user", "userknownhostsfile",
  ]);
});
