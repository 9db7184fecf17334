"""mnemo serve over HTTPS, against a test CA (trustme): curl and the official `openai` client
trust it through the CA's certificate and refuse without it; plain HTTP gets no answer on the
TLS port; connections that never finish their handshake do not hold the others; the CLI finds
the server through the data directory's lock and trusts it through MNEMO_CA_CERT.

    python test_tls.py MNEMO_BINARY
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import httpx2
import openai
import trustme
from openai import OpenAI


def start(binary, work, *args):
    out = open(os.path.join(work, "serve.out"), "w+")
    err = open(os.path.join(work, "serve.err"), "w+")
    server = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"), *args],
        stdout=out,
        stderr=err,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on "):
                return server, line.removeprefix("listening on ").strip()
        if server.poll() is not None:
            err.seek(0)
            raise SystemExit(f"mnemo serve exited: {err.read()}")
        time.sleep(0.1)
    server.kill()
    raise SystemExit("mnemo serve did not start")


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        ca = trustme.CA()
        certificate = ca.issue_cert("localhost", "127.0.0.1")
        ca_pem = os.path.join(work, "ca.pem")
        cert_pem = os.path.join(work, "cert.pem")
        key_pem = os.path.join(work, "key.pem")
        ca.cert_pem.write_to_path(ca_pem)
        certificate.private_key_pem.write_to_path(key_pem)
        with open(cert_pem, "wb") as chain:
            for blob in certificate.cert_chain_pems:
                chain.write(blob.bytes())

        server, base = start(binary, work, "--tls-cert", cert_pem, "--tls-key", key_pem)
        try:
            assert base.startswith("https://127.0.0.1:"), base
            port = int(base.rsplit(":", 1)[1])

            trusted = curl("--cacert", ca_pem, f"{base}/health")
            assert trusted.returncode == 0 and '"ok"' in trusted.stdout, trusted
            untrusted = curl(f"{base}/health")
            assert untrusted.returncode == 60, f"curl trusted an unknown CA: {untrusted}"
            plain = curl(f"http://127.0.0.1:{port}/health")
            assert plain.returncode != 0 and '"ok"' not in plain.stdout, f"plain HTTP was answered: {plain}"

            # Clients that connect and never speak TLS: the others are still served.
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
            started = time.monotonic()
            again = curl("--cacert", ca_pem, f"{base}/health")
            assert again.returncode == 0, again
            assert time.monotonic() - started < 5, "idle handshakes held the server"
            for sock in idle:
                sock.close()

            context = ssl.create_default_context(cafile=ca_pem)
            client = OpenAI(
                base_url=f"{base}/v1",
                api_key="unused-on-loopback",
                http_client=httpx2.Client(verify=context),
            )
            answer = client.embeddings.create(
                model="all-MiniLM-L6-v2", input=["Ajouter un cache LRU", "Write the docs"]
            )
            assert [len(item.embedding) for item in answer.data] == [384, 384], answer

            stranger = OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
            try:
                stranger.embeddings.create(model="all-MiniLM-L6-v2", input=["x"])
            except openai.APIConnectionError:
                pass
            else:
                raise AssertionError("the openai client trusted a certificate of an unknown CA")

            # The CLI, finding the server through the lock of the data directory.
            command = [binary, "search", "cache", "--data-dir", os.path.join(work, "data")]
            without_ca = subprocess.run(command, capture_output=True, text=True)
            assert without_ca.returncode != 0, without_ca
            assert "MNEMO_CA_CERT" in without_ca.stderr, without_ca.stderr
            with_ca = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "MNEMO_CA_CERT": ca_pem}
            )
            # Nothing is indexed: the server itself says so, which shows the CLI reached it.
            assert f"mnemo serve at {base} answered 404" in with_ca.stderr, with_ca.stderr

            print(f"TLS: curl, openai {openai.__version__} and the CLI over {base}; plain HTTP and unknown CAs refused")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        with open(os.path.join(work, "serve.out")) as out:
            assert "stopped; the store is flushed" in out.read()


if __name__ == "__main__":
    main()
