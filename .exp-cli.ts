import { parseCommandLine } from "/work/main/src/cli.ts";
const cases: string[][] = [
  ["-NvD", "9001", "host"], ["-D9001", "host"], ["-vvv","host"], ["-q","host"], ["host","-p","2222"],
  ["--","host"], ["--","host","-p","2"], ["-i","007","host"], ["-o","Port=2222","host"], ["-o","Port 2222","host"],
  ["-o",'UserKnownHostsFile="/a /b"',"host"], ["-o","Bogus=1","host"], ["-A","-X","-C","-c","aes","-b","addr","host"],
  ["-Z","host"], ["host","-p"], ["--bogus","host"], ["--allow-ip","10.0.0.0/8","--allow-ip","1.2.3.4,5.6.7.8","host"],
  ["--allow-ip","10","host"], ["--allow-ip"], ["--allow-ip=1e3","host"], ["--json","host"], ["--help"],["-h"],["--version"],["-V"], [], ["host","ls","-l"],
  ["-o","Compression=yes","host"], ["-o", "Port=", "host"], ["-o","=x","host"], ["-o", "  Port  =  2222  ", "host"], ["--version", "--bogus"], ["-h", "-Z"],
  ["--allow-ip", "10.0.0.1", "--json", "host"], ["host", "--json"], ["-p", "-D", "host"], ["-o", "LocalForward 9 x:1", "h"], ["--JSON","h"], ["--allowIp", "1.2.3.4", "h"], ["--allow-ip", "--json", "h"],
];
for (const c of cases) {
  try { const p = parseCommandLine(c); console.log(JSON.stringify(c), "=>", JSON.stringify(p.command === "help" ? {command:"help"} : p)); }
  catch (e: any) { console.log(JSON.stringify(c), "THROWS", e.code, e.exitCode, e.message); }
}
