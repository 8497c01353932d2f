"""Run a command on a fresh pseudo-terminal and answer its prompts.

usage: pty-drive.py ANSWERS_JSON -- command [args...]

PTY_COLUMNS in the environment sets the terminal's width (a fresh pty has
none). ANSWERS_JSON is a list of [expected_text, reply] pairs, answered in order: when
the terminal output so far contains expected_text, reply is typed. Everything
the terminal shows is copied to stdout as it arrives. SIGTERM to this driver is
passed on to the command as SIGINT (a user's Ctrl-C); the driver exits with the
command's status. Every wait is bounded.
"""
import fcntl, json, os, pty, select, signal, struct, sys, termios, time

answers = json.loads(sys.argv[1])
command = sys.argv[sys.argv.index("--") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)
# A terminal width, when asked for (PTY_COLUMNS): a fresh pty reports 0x0.
if os.environ.get("PTY_COLUMNS"):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, int(os.environ["PTY_COLUMNS"]), 0, 0))

def forward(signum, frame):
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass

signal.signal(signal.SIGTERM, forward)
seen = b""
deadline = time.time() + 60
status = None
while time.time() < deadline:
    try:
        ready, _, _ = select.select([fd], [], [], 0.1)
    except InterruptedError:
        ready = []
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if data:
            seen += data
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    while answers and answers[0][0].encode() in seen:
        expected, reply = answers.pop(0)
        seen = seen[seen.index(expected.encode()) + len(expected):]
        os.write(fd, reply.encode())
    done, code = os.waitpid(pid, os.WNOHANG)
    if done:
        status = code
        # What the command wrote just before exiting is still in the terminal.
        while select.select([fd], [], [], 0.2)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            sys.stdout.buffer.write(data)
        sys.stdout.flush()
        break
if status is None:
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
