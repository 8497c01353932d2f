/** The usage text of `safetunnel --help`. */
import { clientSetupHelp } from "../client-setup.ts";

export const HELP_TEXT = `usage: safetunnel [-46fgNqVvy] [-D [bind_address:]port] [-E log_file] [-F configfile]
                  [-i identity_file] [-J destination] [-L spec] [-l login_name] [-o option]
                  [-p port] [-R spec] [--allow-ip cidr[,cidr...]] [--allow-users list]
                  [--no-reconnect] [--socks-auth user:pass | user:@file] [--pid-file file]
                  [--print-unit] [--json] [user@]host
       safetunnel leakcheck [--proxy HOST:PORT] [--wait SECONDS] [--open] [--watch]
                  [--pcap FILE] [--json]     (see safetunnel leakcheck --help)
       safetunnel serve [--listen ADDR:PORT] [--authorized-keys FILE] [--host-key FILE]
                  [--permit-open HOST:PORT] [--gateway-ports]   (the home end; see serve --help)
       safetunnel demo                       (the whole thing on this machine; see demo --help)
       safetunnel browser [firefox|chromium] [--proxy HOST:PORT] [--profile DIR]
                  (a browser set up not to leak, checked as it starts; see browser --help)
       safetunnel exec [--proxy HOST:PORT] -- COMMAND [ARGS]
                  (COMMAND with the tunnel as its proxy; see exec --help)
       safetunnel nc [--proxy HOST:PORT] HOST PORT    (for ssh's ProxyCommand)

A SOCKS5 proxy through SSH that never leaks DNS: names go through the tunnel
and are resolved by the SSH server; requests that carry an IP address (the app
resolved the name locally) are refused with SOCKS reply 0x02 and a log line
saying how to fix the app.

  -D [bind_address:]port   SOCKS4a/5 and HTTP proxy (loopback unless -g)
  -L [bind_address:]port:host:hostport
                           Forward a local port to host:hostport via the server
                           (also port/host/hostport)
  -R [bind_address:]port:host:hostport
                           Forward a port on the server back to host:hostport
  -R [bind_address:]port   SOCKS4a/5 proxy on the server's port; connects go
                           out from here, names resolved here
  -N                       Accepted for ssh compatibility (no command is ever run)
  -f                       Go to the background once every forward listens
                           (exit 0 then, 255 if it never gets there); the log
                           goes to syslog, or to -E's file
  -E log_file              Append the log to log_file instead of stderr
  -y                       Send the log to syslog instead of stderr
  --pid-file file          Write the running tunnel's PID to file (removed
                           when it stops)
  --print-unit             Print a systemd user unit that runs this command
                           line at login, instead of running it
  -p port                  SSH port of the server
  -l login_name            User to log in as
  -i identity_file         Private key to try (repeatable)
  -F configfile            Use this ssh_config instead of ~/.ssh/config
  -J [user@]host[:port][,...]
                           Connect through these jump hosts
  -o Option=value          Any supported ssh_config option, e.g. -o Port=2222
  -g                       Allow other hosts to connect to forwarded ports
  -4 / -6                  Use IPv4 / IPv6 only for the SSH connection
  -v                       More detail (repeat for more)
  -q                       Quiet: errors only
  -V, --version            Print the version
  -h, --help               This help
  --allow-ip cidrs         Let these IP-literal destinations through the proxy
  --allow-users list       Let these local accounts (names or uids; * for all) use
                           the -D and -L ports; by default only yours and root's
  --socks-auth user:pass   Require this SOCKS5 username and password (RFC 1929)
  --socks-auth user:@file  on every -D port and every -R port alone (SOCKS4
                           clients are refused); with @file the password is
                           file's first line and stays out of ps (a password
                           starting with @ must go there)
  --max-connections n      At most n local connections at once (default 1024,
                           or below ulimit -n); at the cap the oldest one still
                           in its SOCKS handshake is closed for a new one
  --no-reconnect           Exit 255 when the connection drops, as ssh does
                           (by default the listeners stay and it reconnects;
                           SIGHUP reconnects at once)
  --json                   JSON log lines

${clientSetupHelp()}
`;
