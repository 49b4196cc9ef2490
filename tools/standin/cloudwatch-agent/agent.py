#!/usr/bin/python3
"""STAND-IN for amazon-cloudwatch-agent (logs only): not AWS's agent.

Reads the configuration the stand-in ctl applied (etc/amazon-cloudwatch-agent.d/), follows
each collect_list file and sends its new lines to CloudWatch Logs with boto3
(CreateLogStream, then PutLogEvents), every logs.force_flush_interval seconds. README.md
says what it implements and what it does not.
"""
from __future__ import annotations

import json
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions

HOME = Path("/opt/aws/amazon-cloudwatch-agent")
APPLIED = HOME / "etc" / "amazon-cloudwatch-agent.d"
MODE_FILE = HOME / "etc" / "standin-mode"
STATE = HOME / "logs" / "state"
RUNNING = True


def log(message: str) -> None:
    print(f"cloudwatch-agent stand-in: {message}", flush=True)


def instance_id(mode: str) -> str:
    """IMDSv2 in ec2 mode; the host name elsewhere (or when IMDS does not answer)."""
    if mode == "ec2":
        try:
            token_req = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT",
                                               headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
            token = urllib.request.urlopen(token_req, timeout=2).read().decode()
            req = urllib.request.Request("http://169.254.169.254/latest/meta-data/instance-id",
                                         headers={"X-aws-ec2-metadata-token": token})
            return urllib.request.urlopen(req, timeout=2).read().decode()
        except OSError as exc:
            log(f"IMDSv2 did not answer ({exc}); {{instance_id}} is the host name")
    return socket.gethostname()


def stream_name(template: str, mode: str) -> str:
    host = socket.gethostname()
    try:
        address = socket.gethostbyname(host)
    except OSError:
        address = "127.0.0.1"
    out = template.replace("{hostname}", host).replace("{local_hostname}", host).replace("{ip_address}", address)
    if "{instance_id}" in out:
        out = out.replace("{instance_id}", instance_id(mode))
    return out


def load_config() -> dict:
    files = sorted(APPLIED.glob("file_*"))
    if not files:
        log(f"no applied configuration in {APPLIED}: run amazon-cloudwatch-agent-ctl -a fetch-config")
        sys.exit(1)
    return json.loads(files[0].read_text())


class Source:
    """One collect_list entry: the file, where we are in it, and the lines not sent yet."""

    def __init__(self, entry: dict, mode: str):
        self.path = Path(entry["file_path"])
        self.group = entry["log_group_name"]
        self.stream = stream_name(entry.get("log_stream_name") or "{instance_id}", mode)
        self.state_file = STATE / (str(self.path).strip("/").replace("/", "_") + ".json")
        self.pending: list[dict] = []
        self.stream_ready = False
        try:
            saved = json.loads(self.state_file.read_text())
            self.inode, self.offset = saved["inode"], saved["offset"]
        except (OSError, ValueError, KeyError):
            self.inode, self.offset = None, 0  # a file never seen: from its beginning

    def read(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if st.st_ino != self.inode or st.st_size < self.offset:  # rotated or truncated: start over
            self.inode, self.offset = st.st_ino, 0
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return
        now = int(time.time() * 1000)
        for line in data[:end].split(b"\n"):
            if line:
                self.pending.append({"timestamp": now, "message": line.decode("utf-8", "replace")})
        self.offset += end + 1

    def flush(self, client) -> None:
        if not self.pending:
            self.save()
            return
        if not self.stream_ready:
            try:
                client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
            except client.exceptions.ResourceAlreadyExistsException:
                pass
            self.stream_ready = True
        batch, self.pending = self.pending[:10000], self.pending[10000:]
        client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
        self.save()

    def save(self) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"inode": self.inode, "offset": self.offset}))


def main() -> int:
    def stop(*_):
        global RUNNING
        RUNNING = False

    signal.signal(signal.SIGTERM, stop)
    config = load_config()
    mode = MODE_FILE.read_text().strip() if MODE_FILE.exists() else "ec2"
    region = (config.get("agent") or {}).get("region")
    logs = config.get("logs") or {}
    endpoint = logs.get("endpoint_override") or None
    interval = float(logs.get("force_flush_interval", 5))
    # The real agent's onPremise credentials: the shared file's AmazonCloudWatchAgent profile.
    session = boto3.Session(profile_name="AmazonCloudWatchAgent") if mode == "onPremise" else boto3.Session()
    client = session.client("logs", region_name=region, endpoint_url=endpoint)
    sources = [Source(e, mode) for e in logs["logs_collected"]["files"]["collect_list"]]
    log(f"region {region}, endpoint {endpoint or 'the region default'}, mode {mode}, "
        f"{len(sources)} files: " + ", ".join(f"{s.path} -> {s.group}/{s.stream}" for s in sources))
    while RUNNING:
        for source in sources:
            try:
                source.read()
                source.flush(client)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                log(f"{source.path} -> {source.group}: {exc} (kept, retried)")
        deadline = time.monotonic() + interval
        while RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
