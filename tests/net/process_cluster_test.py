#!/usr/bin/env python3
"""Three synod_node processes on 127.0.0.1 with the file log (Raft paper §5.2 election,
§5.3 replication, §5.4.1 restart safety, on real sockets and disks):

1. a leader is elected and writes commit;
2. garbage, a truncated frame, an oversized length and a wrong cluster id sent to the
   leader's peer port are refused and the group keeps committing;
3. the leader is killed with SIGKILL; the others elect a new leader and keep committing;
4. the old leader restarts from its data directory and catches up;
5. every acknowledged write is read back (linearizable reads) from every node;
6. SIGTERM stops each node cleanly (exit status 0, "exiting" printed).

With --tls the nodes talk over mutual TLS with throw-away certificates from one CA, and
the hostile connections (which hold no certificate) are refused by the TLS handshake.

usage: process_cluster_test.py SYNOD_NODE WORK_DIR [--tls]
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

CLUSTER = 42


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def hello(cluster: int, sender: int, recipient: int) -> bytes:
    body = struct.pack("<IHBBQQQ", 0x484E5953, 1, 1, 0, cluster, sender, recipient)
    return body + struct.pack("<I", crc32c(body))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def make_certificates(work):
    """A cluster CA and one certificate per node, made with the openssl command."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=synod-test-ca")
    for i in (1, 2, 3):
        run("req", *ec, "-keyout", f"node{i}.key", "-out", f"node{i}.csr",
            "-subj", f"/CN=node{i}")
        run("x509", "-req", "-in", f"node{i}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"node{i}.crt", "-days", "2")


class Node:
    def __init__(self, binary, work, ident, peer_ports, client_port, tls=False):
        self.binary, self.id, self.tls, self.work = binary, ident, tls, work
        self.peer_ports, self.client_port = peer_ports, client_port
        self.data = os.path.join(work, f"node{ident}")
        self.out_path = os.path.join(work, f"node{ident}.out")
        self.proc = None

    def start(self):
        args = [self.binary, "--id", str(self.id), "--cluster", str(CLUSTER),
                "--listen", f"127.0.0.1:{self.peer_ports[self.id]}",
                "--client", f"127.0.0.1:{self.client_port}",
                "--log", "file", "--data", self.data, "--election-ms", "300",
                "--snapshot-after", "150"]
        for other, port in self.peer_ports.items():
            if other != self.id:
                args += ["--peer", f"{other}=127.0.0.1:{port}"]
        if self.tls:
            args += ["--tls-ca", os.path.join(self.work, "ca.crt"),
                     "--tls-cert", os.path.join(self.work, f"node{self.id}.crt"),
                     "--tls-key", os.path.join(self.work, f"node{self.id}.key")]
        self.out = open(self.out_path, "a")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                self.request("status")
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"node {self.id} did not start; see {self.out_path}")

    def request(self, line, timeout=5.0):
        with socket.create_connection(("127.0.0.1", self.client_port), timeout=timeout) as s:
            s.sendall((line + "\n").encode())
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("connection closed")
                answer += chunk
            return answer.decode().strip()

    def status(self):
        fields = dict(kv.split("=") for kv in self.request("status").split())
        return fields

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.out.close()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        self.out.close()
        return code


def wait_for_leader(nodes, timeout=15.0):
    """The node that leads the newest term (a deposed leader may not know it yet)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        leaders = []
        for n in nodes:
            try:
                st = n.status()
            except OSError:
                continue
            if st["role"] == "leader":
                leaders.append((int(st["term"]), n))
        if leaders:
            return max(leaders, key=lambda t: t[0])[1]
        time.sleep(0.05)
    raise AssertionError("no leader elected within %.0f s" % timeout)


def read(node, key, timeout=10.0):
    """A linearizable get, retried while the group has no leader to confirm it."""
    deadline = time.time() + timeout
    while True:
        answer = node.request(f"get {key}")
        if not answer.startswith("err ") or time.time() > deadline:
            return answer
        time.sleep(0.05)


def write(nodes, key, value, acked, timeout=10.0):
    """Writes through any live node until one acknowledges (a follower forwards)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for n in nodes:
            try:
                answer = n.request(f"put {key} {value}")
            except OSError:
                continue
            if answer.startswith("ok "):
                acked[key] = value
                return
        time.sleep(0.05)
    raise AssertionError(f"put {key} was never acknowledged")


def attack(port, tls):
    """Hostile bytes at a node's peer port; each connection must be closed by the node.
    Over TLS none of them gets past the TLS handshake (they hold no certificate)."""
    frame_header_garbage = bytes([0xEE] * 64)
    oversized = struct.pack("<IBBHI", 0x7FFFFFFF, 1, 3, 0, 0)
    truncated = struct.pack("<IBBHI", 100, 1, 3, 0, 0) + b"\x00" * 10
    payloads = [
        ("garbage instead of a handshake", b"\x5a" * 36, False),
        ("wrong cluster id", hello(CLUSTER + 1, 1, 0), False),
        ("garbage frame", frame_header_garbage, True),
        ("oversized length", oversized, True),
        ("truncated frame", truncated, True),
    ]
    for name, payload, after_handshake in payloads:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            if after_handshake and not tls:
                # The smallest id dials, so node 1 is a legal sender to any other node.
                s.sendall(hello(CLUSTER, 1, attack.target))
                answer = s.recv(36)
                assert len(answer) == 36 and answer[6] == 2, f"{name}: handshake refused"
            s.sendall(payload)
            if name == "truncated frame":
                s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        print(f"  refused: {name}")


def main():
    binary, work = sys.argv[1], sys.argv[2]
    tls = "--tls" in sys.argv[3:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if tls:
        make_certificates(work)
    ports = free_ports(6)
    peer_ports = {1: ports[0], 2: ports[1], 3: ports[2]}
    nodes = [Node(binary, work, i, peer_ports, ports[2 + i], tls) for i in (1, 2, 3)]
    acked = {}
    try:
        for n in nodes:
            n.start()
        leader = wait_for_leader(nodes)
        print(f"leader elected: node {leader.id}")
        for i in range(100):
            write([leader], f"a{i}", f"first-{i}", acked)
        print("100 writes acknowledged")

        victim = next(n for n in nodes if n.id != 1)
        attack.target = victim.id
        attack(peer_ports[victim.id], tls)
        for i in range(20):
            write(nodes, f"b{i}", f"after-attack-{i}", acked)
        assert victim.proc.poll() is None, "the attacked node died"
        print("group healthy after the attacks")

        leader = wait_for_leader(nodes)
        leader.kill()
        print(f"killed leader node {leader.id} with SIGKILL")
        survivors = [n for n in nodes if n is not leader]
        new_leader = wait_for_leader(survivors)
        assert new_leader is not leader
        print(f"new leader: node {new_leader.id}")
        for i in range(200):
            write(survivors, f"c{i}", f"second-{i}", acked)
        print("200 more writes acknowledged without the old leader")

        leader.start()
        target = int(new_leader.status()["commit"])
        deadline = time.time() + 20
        while int(leader.status()["applied"]) < target:
            assert time.time() < deadline, "the restarted node did not catch up"
            time.sleep(0.05)
        print(f"old leader restarted and applied through {target}")

        for n in nodes:
            for key, value in acked.items():
                answer = read(n, key)
                assert answer == f"value {value}", f"node {n.id}: get {key} -> {answer!r}"
        print(f"all {len(acked)} acknowledged writes read back from every node")
    finally:
        codes = []
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None:
                codes.append(n.terminate())
    assert codes == [0, 0, 0], f"exit codes {codes}"
    for n in nodes:
        with open(n.out_path) as f:
            assert "exiting" in f.read(), f"node {n.id} did not log its exit"
    print("all nodes exited cleanly on SIGTERM")


if __name__ == "__main__":
    main()
