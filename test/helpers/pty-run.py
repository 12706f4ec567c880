#!/usr/bin/env python3
"""Runs a command in a pseudo-terminal, as a person at a terminal would: waits for a prompt,
types the given keystrokes, then collects everything printed until the command exits.

usage: pty-run.py PROMPT KEYS_HEX -- COMMAND ARGS...
Prints the terminal output, then a last line `exit=N`."""
import os, pty, select, sys, time

def main() -> None:
    prompt, keys_hex, sep, *command = sys.argv[1:]
    assert sep == '--'
    keys = bytes.fromhex(keys_hex)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    seen = b''
    typed = False
    deadline = time.time() + 30
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            seen += data
        if not typed and prompt.encode() in seen:
            time.sleep(0.2)  # let readline take the terminal before the keys arrive
            for b in keys:   # one key at a time, as typed
                os.write(fd, bytes([b]))
                time.sleep(0.01)
            typed = True
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(seen.decode('utf-8', 'replace'))
    sys.stdout.write(f"\nexit={os.waitstatus_to_exitcode(status)}\n")

main()
