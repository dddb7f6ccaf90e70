"""The write counter follows which descriptors are TCP sockets through the trace alone, so it
counts the same where strace cannot name a descriptor (a sandbox hiding /proc)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.socket_writes import SYSCALLS, tcp_writes

TRACE = """\
100   socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 3
100   socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 4
100   accept4(3, {sa_family=AF_INET, sin_port=htons(5000), sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 7
100   accept4(4, {sa_family=AF_UNIX}, [110 => 2], SOCK_CLOEXEC) = 8
100   write(7, "HTTP/1.1 200 OK\\r\\n"..., 180) = 180
100   write(8, "on a unix socket", 16) = 16
100   write(6, "\\1\\0\\0\\0\\0\\0\\0\\0", 8) = 8
100   write(1, "a log line about write(7, ...) = 3", 35) = 35
100   sendto(7, "data: {}", 8, 0, NULL, 0 <unfinished ...>
101   write(2, "another thread", 14) = 14
100   <... sendto resumed>) = 8
100   writev(7, [{iov_base="x", iov_len=1}], 1) = -1 EAGAIN (Resource temporarily unavailable)
100   clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, child_tid=0x7f} => {parent_tid=[102]}, 88) = 102
102   sendmsg(7, {msg_name=NULL, msg_iov=[{iov_base="y", iov_len=1}], msg_iovlen=1}, 0) = 1
102   fcntl(7, F_DUPFD_CLOEXEC, 0) = 9
100   write(9, "z", 1) = 1
100   close(7) = 0
100   openat(AT_FDCWD, "/tmp/file", O_WRONLY) = 7
100   write(7, "a file now", 10) = 10
100   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 103
103   close(9) = 0
100   write(9, "the parent's copy is still open", 31) = 31
103   write(9, "the child's is closed", 21) = 21
100   +++ exited with 0 +++
"""


def test_only_writes_to_tcp_sockets_are_counted() -> None:
    # the accepted socket: status, sendto (resumed), the failed writev, a thread's sendmsg,
    # its duplicate, and the parent's copy after a fork; not the unix socket, the eventfd, the
    # log line that quotes a write, the file that took a closed socket's number, nor the
    # closed descriptor in the forked child
    assert tcp_writes(TRACE) == 6


SERVER = """
import os, socket, threading
listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
accepted, _ = listener.accept()
accepted.send(b"1"); client.sendall(b"2")
copy = accepted.dup(); copy.send(b"3")
def in_a_thread(): client.send(b"4")
thread = threading.Thread(target=in_a_thread); thread.start(); thread.join()
read_end, write_end = os.pipe(); os.write(write_end, b"a pipe")
local, other = socket.socketpair(); local.send(b"a unix socket")
child = os.fork()
if child == 0:
    client.send(b"5"); os._exit(0)
os.waitpid(child, 0)
"""


@pytest.mark.tools  # strace
def test_a_real_trace_counts_each_send_to_a_tcp_socket(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(SERVER))
    calls = "trace=" + ",".join(SYSCALLS)
    subprocess.run(["strace", "-f", "-qq", "-e", calls, "-e", "signal=none", "-o", str(trace),
                    sys.executable, str(script)], check=True, timeout=60)  # fmt: skip
    assert tcp_writes(trace.read_text()) == 5
