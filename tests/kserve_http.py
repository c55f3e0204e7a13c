"""A raw KServe-v2 HTTP client (from the protocol: JSON header + binary tensor data), so the
tests can send what tritonclient never sends: wrong sizes, lengths, types and JSON."""
from __future__ import annotations

import http.client
import json
import struct
from dataclasses import dataclass

import numpy as np

NUMPY = {"FP32": "<f4", "INT32": "<i4", "INT64": "<i8", "BOOL": "?"}


@dataclass
class Answer:
    status: int
    error: str          # the server's error message ('' on success)
    outputs: dict       # name -> numpy array (BYTES: list of bytes), on success


def element(data: bytes) -> bytes:
    """One BYTES element on the wire: 4-byte little-endian length, then the bytes."""
    return struct.pack("<I", len(data)) + data


def tensor(name: str, datatype: str, value, shape: list[int] | None = None) -> tuple[str, str, list[int], bytes]:
    """(name, datatype, shape, raw bytes) of one input; BYTES values are bytes, others numbers."""
    if datatype == "BYTES":
        return name, datatype, shape or [1], element(value)
    return name, datatype, shape or [1], np.array([value], NUMPY[datatype]).tobytes()


def post(url: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 300) -> tuple[int, dict, bytes]:
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def infer(url: str, model: str, inputs: list[tuple[str, str, list[int], bytes]], outputs: tuple[str, ...] = (),
          claimed: dict[str, int] | None = None, header_extra: int = 0, timeout: float = 300) -> Answer:
    """POST /v2/models/<model>/infer with binary inputs. claimed: binary_data_size to announce
    instead of the true one (per input); header_extra: added to Inference-Header-Content-Length."""
    claimed = claimed or {}
    header = {"inputs": [{"name": n, "datatype": d, "shape": s,
                          "parameters": {"binary_data_size": claimed.get(n, len(raw))}} for n, d, s, raw in inputs],
              "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs]}
    head = json.dumps(header).encode()
    body = head + b"".join(raw for *_, raw in inputs)
    headers = {"Inference-Header-Content-Length": str(len(head) + header_extra),
               "Content-Type": "application/octet-stream"}
    return parse(*post(url, f"/v2/models/{model}/infer", body, headers, timeout))


def infer_json(url: str, model: str, body: bytes, timeout: float = 300) -> Answer:
    """POST a JSON-only request body (no binary data)."""
    return parse(*post(url, f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"}, timeout))


def parse(status: int, headers: dict, body: bytes) -> Answer:
    """Split an answer into its JSON header and binary outputs."""
    size = int({k.lower(): v for k, v in headers.items()}.get("inference-header-content-length", len(body)))
    head = json.loads(body[:size] or b"{}")
    if status != 200:
        return Answer(status, head.get("error", body.decode("utf-8", "replace")), {})
    outputs, offset = {}, size
    for out in head.get("outputs", []):
        n = out.get("parameters", {}).get("binary_data_size")
        if n is None:   # JSON data
            outputs[out["name"]] = out["data"]
            continue
        raw, offset = body[offset:offset + n], offset + n
        if out["datatype"] == "BYTES":
            items, i = [], 0
            while i < len(raw):
                (length,) = struct.unpack_from("<I", raw, i)
                items.append(raw[i + 4:i + 4 + length])
                i += 4 + length
            outputs[out["name"]] = items
        else:
            outputs[out["name"]] = np.frombuffer(raw, NUMPY[out["datatype"]]).reshape(out["shape"])
    return Answer(status, "", outputs)
