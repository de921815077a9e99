"""Dev only: Cloud Storage `finalized` events for the local stack, delivered to
on_upload_finalized as Eventarc would (docs/design/emulators.md).

    python -m devtools.storage_events --storage http://127.0.0.1:9199 \\
        --bucket demo-visitors.appspot.com --target http://127.0.0.1:8080/on_upload_finalized"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests

FINALIZED = "google.cloud.storage.object.v1.finalized"


def cloud_event_headers(bucket: str, item: dict, event_id: str) -> dict[str, str]:
    """The binary-mode CloudEvent headers Eventarc sends for a finalized object."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-type": FINALIZED,
        "ce-subject": f"objects/{item['name']}",
        "ce-time": item.get("timeCreated") or item.get("updated"),
    }
    return {name: value for name, value in headers.items() if value is not None}


class StorageEventBridge:
    def __init__(
        self, storage_url: str, bucket: str, target: str, interval: float = 0.2, max_pause: float = 10.0, log=print
    ):
        self.storage_url = storage_url.rstrip("/")
        self.bucket = bucket
        self.target = target
        self.interval = interval
        self.max_pause = max_pause
        self.log = log
        self.stopping = threading.Event()
        self.seen: set[tuple[str, str]] = set()
        self.http = requests.Session()
        self.deliveries = ThreadPoolExecutor(max_workers=8, thread_name_prefix="delivery")

    def list_objects(self) -> list[dict]:
        items: list[dict] = []
        token = None
        while True:
            params: dict[str, str] = {"pageToken": token} if token else {}
            response = self.http.get(
                f"{self.storage_url}/storage/v1/b/{quote(self.bucket, safe='')}/o", params=params, timeout=10
            )
            response.raise_for_status()
            page = response.json()
            items += page.get("items") or []
            token = page.get("nextPageToken")
            if not token:
                return items

    def poll_once(self) -> int:
        """Start a delivery for each object generation not seen before; how many."""
        new = 0
        for item in self.list_objects():
            key = (item["name"], str(item["generation"]))
            if key not in self.seen:
                self.seen.add(key)
                self.deliveries.submit(self.deliver, item)
                new += 1
        return new

    def deliver(self, item: dict) -> None:
        event_id = uuid.uuid4().hex  # the same for every retry of this event, as with Eventarc
        headers = cloud_event_headers(self.bucket, item, event_id)
        body = json.dumps(item).encode()
        pause, attempt = 0.5, 1
        while not self.stopping.is_set():
            try:
                response = requests.post(self.target, data=body, headers=headers, timeout=60)
                status = str(response.status_code)
                if response.ok:
                    self.log(f"delivered {item['name']}#{item['generation']} (attempt {attempt}): {status}")
                    return
            except requests.RequestException as error:
                status = type(error).__name__
            self.log(
                f"delivery of {item['name']}#{item['generation']} failed (attempt {attempt}): {status}; "
                f"retrying in {pause:.1f} s"
            )
            self.stopping.wait(pause)
            pause, attempt = min(pause * 2, self.max_pause), attempt + 1

    def run(self) -> None:
        announced = False
        while not self.stopping.is_set():
            try:
                self.poll_once()
                if not announced:
                    self.log(f"watching gs://{self.bucket} every {self.interval} s; events go to {self.target}")
                    announced = True
            except requests.RequestException as error:
                self.log(f"cannot list gs://{self.bucket}: {type(error).__name__}; trying again")
            self.stopping.wait(self.interval)
        self.deliveries.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        self.stopping.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="the Storage emulator, http://HOST:PORT")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--target", required=True, help="URL of on_upload_finalized")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between listings")
    args = parser.parse_args(argv)
    bridge = StorageEventBridge(
        args.storage, args.bucket, args.target, args.interval, log=lambda line: print(line, flush=True)
    )
    signal.signal(signal.SIGTERM, lambda *_: bridge.stop())
    try:
        bridge.run()
    except KeyboardInterrupt:
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
