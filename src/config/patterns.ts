/**
 * OpenSSH's match.c: the glob patterns of Host lines, Match host, known_hosts
 * host fields and Include paths. Pure.
 */

/**
 * match_pattern(): `*` is any run of characters, `?` exactly one, everything else literal.
 *
 * @example
 * matchPattern("web1.example.org", "web?.example.*") // true
 */
export function matchPattern(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === "*") {
      starP = p++;
      starT = t;
    } else if (starP !== -1) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * ssh_config pattern-list matching: `*` and `?` wildcards, `!` negates, and a
 * matching negated pattern vetoes the whole list (match.c). Case-insensitive
 * by default as `Match host` is; `Host` lines are case-sensitive in OpenSSH
 * (checked with `ssh -G`), so the resolver passes `ignoreCase: false` there.
 *
 * @example
 * hostPatternListMatches(["*.example.com", "!bad.example.com"], "web.example.com"); // true
 * hostPatternListMatches(["*.example.com", "!bad.example.com"], "bad.example.com"); // false
 * hostPatternListMatches("a,b".split(","), "B"); // true
 */
export function hostPatternListMatches(
  patterns: string[],
  host: string,
  options: { ignoreCase?: boolean } = {},
): boolean {
  const ignoreCase = options.ignoreCase ?? true;
  const subject = ignoreCase ? host.toLowerCase() : host;
  let matched = false;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const body = negated ? raw.slice(1) : raw;
    const pattern = ignoreCase ? body.toLowerCase() : body;
    if (!matchPattern(subject, pattern)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

