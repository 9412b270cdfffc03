#!/usr/bin/env python3
"""A stand-in for AWS SSM Run Command and its agent, for Gantry's tests only.

SSM and its agent cannot run here (no AWS, no EC2 instance), and moto's SSM records commands
without running them. This stand-in plays both sides on loopback, so `gantry remote` and the
Gantry SSM documents can be tested end to end:

- the API side speaks SSM's JSON protocol (X-Amz-Target: AmazonSSM.<Operation>) for
  SendCommand, ListCommands, ListCommandInvocations, GetCommandInvocation and CancelCommand
  (pending invocations end Cancelled; running scripts are killed, SIGKILL to their process
  group, and end Cancelled with result 137, as the agent reports a script it stopped early; a
  script that ended before the kill keeps its result; the command ends Cancelled), and checks
  parameters as SSM does: unknown or missing ones, and values that do not match the document's
  allowedPattern, are refused with InvalidParameters before anything runs;
- the agent side runs the document's aws:runShellScript steps on this host for each target
  "instance" (ids and tag targets come from a JSON config), with `sh`, in a process group of
  its own that is killed (SIGKILL, no grace) at timeoutSeconds with result 137, as the agent
  does; MaxConcurrency and MaxErrors are honoured (numbers only); outputs are cut to the first
  24,000 characters of stdout and 8,000 of stderr, as the API returns them;
- GetCommandInvocation without PluginName for a document of more than one step is refused with
  InvalidPluginName, as SSM does;
- with "list_tag_targets_when_started": true, the invocations of a tag target are listed only
  once the stand-in starts on them, as SSM does: those it never starts (MaxErrors stopped the
  command) are never listed, while TargetCount counts them;
- with "invalid_command_id_calls": N, the first N ListCommands, ListCommandInvocations and
  GetCommandInvocation calls about each command answer InvalidCommandId, as SSM's eventually
  consistent listings can right after SendCommand;
- an instance with "delivery": "Undeliverable", "DeliveryTimedOut" or "Terminated" never runs
  the command: its invocation ends with that StatusDetails (status Failed, TimedOut or Failed),
  no result code, and does not count against MaxErrors, as in SSM.

Usage: ssm.py --port PORT --documents DIR --config FILE
Config: {"instances": {"i-1": {"env": {"K": "V"}}, "i-2": {"delivery": "Undeliverable"}},
         "tags": {"Role=web": ["i-1"]}, "documents": {"Name": {...document...}},
         "list_tag_targets_when_started": false, "invalid_command_id_calls": 0}
(documents in the config come before those of DIR)
Signatures are not checked. Only loopback.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}

lock = threading.Lock()
commands = {}
# (command id, instance) -> the running script's process, for CancelCommand.
running = {}
cancelled = set()
# command id -> instances not listed yet (a tag target, with list_tag_targets_when_started).
unlisted = {}
# command id -> how many steps its document has.
steps_of = {}
# command id -> how many more listing calls answer InvalidCommandId.
not_listed_yet = {}
# What SSM says of an invocation it never delivered: StatusDetails -> Status.
UNDELIVERED = {"Undeliverable": "Failed", "DeliveryTimedOut": "TimedOut", "Terminated": "Failed"}


class ApiError(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def load_document(directory, name, inline):
    if name in inline:
        return inline[name]
    for ext in (".yaml", ".yml", ".json"):
        path = os.path.join(directory, name + ext)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return yaml.safe_load(f)
    raise ApiError("InvalidDocument", f"document {name} does not exist")


def check_parameters(doc, given):
    declared = doc.get("parameters", {})
    values = {}
    for name, values_list in given.items():
        if name not in declared:
            raise ApiError("InvalidParameters", f"parameter {name} is not in the document")
        if len(values_list) != 1:
            raise ApiError("InvalidParameters", f"parameter {name} takes one value")
        values[name] = values_list[0]
    for name, spec in declared.items():
        if name not in values:
            if "default" not in spec:
                raise ApiError("InvalidParameters", f"parameter {name} is required")
            values[name] = str(spec["default"])
        pattern = spec.get("allowedPattern")
        if pattern is not None and re.search(pattern, values[name]) is None:
            raise ApiError(
                "InvalidParameters",
                f"Parameter \"{name}\" \"{values[name]}\" failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}",
            )
    return values


def substitute(text, values):
    return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", lambda m: values[m.group(1)], text)


def resolve_targets(config, body):
    ids = list(body.get("InstanceIds") or [])
    for target in body.get("Targets") or []:
        key = target["Key"]
        if not key.startswith("tag:"):
            raise ApiError("InvalidParameters", f"target key {key} is not supported here")
        for value in target["Values"]:
            ids += config.get("tags", {}).get(f"{key[4:]}={value}", [])
    for i in ids:
        if i not in config.get("instances", {}):
            raise ApiError("InvalidInstanceId", f"instance {i} is not managed by SSM")
    return sorted(set(ids))


def run_script(script, timeout, env, key):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "_script.sh")
        with open(path, "w", encoding="utf-8") as f:
            f.write(script)
        proc = subprocess.Popen(
            ["sh", path], cwd=tmp, env=env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        with lock:
            running[key] = proc
            if key[0] in cancelled:
                os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=timeout)
            code = proc.returncode
            status = "Success" if code == 0 else "Failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code, status = 137, "TimedOut"
        finally:
            with lock:
                running.pop(key, None)
    if key[0] in cancelled and proc.returncode == -signal.SIGKILL:
        # Stopped early by CancelCommand: the agent reports 137 (128 + SIGKILL), as at a timeout.
        code, status = 137, "Cancelled"
    return status, code, out.decode(errors="replace"), err.decode(errors="replace")


def execute(command_id, doc, values, config, max_concurrency, max_errors):
    steps = [s for s in doc["mainSteps"] if s["action"] == "aws:runShellScript"]
    cmd = commands[command_id]
    ids = list(cmd["invocations"].keys())
    errors = 0
    for start in range(0, len(ids), max_concurrency):
        batch = ids[start:start + max_concurrency]
        if errors > max_errors or command_id in cancelled:
            for i in batch:
                with lock:
                    cmd["invocations"][i].update(Status="Cancelled", StatusDetails="Cancelled")
            continue
        threads = []
        for i in batch:
            delivery = config["instances"][i].get("delivery")
            if delivery is not None:
                with lock:
                    unlisted.get(command_id, set()).discard(i)
                    cmd["invocations"][i].update(
                        Status=UNDELIVERED[delivery], StatusDetails=delivery,
                    )
                continue
            t = threading.Thread(target=invoke, args=(cmd, i, steps, values, config))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        errors += sum(
            1 for i in batch
            if cmd["invocations"][i]["Status"] != "Success"
            and cmd["invocations"][i]["StatusDetails"] not in UNDELIVERED
        )
    with lock:
        if command_id in cancelled:
            cmd["Status"] = "Cancelled"
        else:
            cmd["Status"] = "Success" if errors == 0 else "Failed"


def invoke(cmd, instance, steps, values, config):
    env = dict(os.environ)
    env.update(config["instances"][instance].get("env", {}))
    with lock:
        unlisted.get(cmd["CommandId"], set()).discard(instance)
        cmd["invocations"][instance].update(Status="InProgress", StatusDetails="InProgress")
    status, code, out, err = "Success", 0, "", ""
    for step in steps:
        inputs = step["inputs"]
        script = "\n".join(substitute(line, values) for line in inputs["runCommand"]) + "\n"
        timeout = int(substitute(str(inputs.get("timeoutSeconds", "3600")), values))
        status, code, o, e = run_script(script, timeout, env, (cmd["CommandId"], instance))
        out += o
        err += e
        if status != "Success":
            break
    with lock:
        cmd["invocations"][instance].update(
            Status=status, StatusDetails=status, ResponseCode=code,
            StandardOutputContent=out[:STDOUT_LIMIT], StandardErrorContent=err[:STDERR_LIMIT],
        )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        operation = self.headers.get("X-Amz-Target", "").split(".")[-1]
        try:
            handler = getattr(self, "op_" + operation, None)
            if handler is None:
                raise ApiError("InvalidAction", f"{operation} is not supported by the stand-in")
            self.reply(200, handler(body))
        except ApiError as e:
            self.reply(400, {"__type": e.kind, "message": e.message})

    def op_SendCommand(self, body):
        doc = load_document(
            self.server.documents, body["DocumentName"], self.server.config.get("documents", {})
        )
        values = check_parameters(doc, body.get("Parameters") or {})
        ids = resolve_targets(self.server.config, body)
        max_concurrency = int(body.get("MaxConcurrency") or "50")
        max_errors = int(body.get("MaxErrors") or "0")
        command_id = str(uuid.uuid4())
        with lock:
            commands[command_id] = {
                "CommandId": command_id, "DocumentName": body["DocumentName"],
                "Status": "InProgress", "Parameters": body.get("Parameters") or {},
                "invocations": {
                    i: {"CommandId": command_id, "InstanceId": i, "Status": "Pending",
                        "StatusDetails": "Pending", "ResponseCode": -1,
                        "StandardOutputContent": "", "StandardErrorContent": ""}
                    for i in ids
                },
            }
            if not ids:
                commands[command_id]["Status"] = "Success"
            steps_of[command_id] = len(doc["mainSteps"])
            not_listed_yet[command_id] = int(self.server.config.get("invalid_command_id_calls", 0))
            if body.get("Targets") and self.server.config.get("list_tag_targets_when_started"):
                unlisted[command_id] = set(ids)
        threading.Thread(
            target=execute,
            args=(command_id, doc, values, self.server.config, max(max_concurrency, 1), max_errors),
            daemon=True,
        ).start()
        return {"Command": self.command_view(command_id)}

    def command_view(self, command_id):
        cmd = commands[command_id]
        return {k: v for k, v in cmd.items() if k != "invocations"} | {
            "TargetCount": len(cmd["invocations"]),
        }

    def find(self, command_id):
        if command_id not in commands:
            raise ApiError("InvalidCommandId", f"no command {command_id}")
        return commands[command_id]

    def listed(self, command_id):
        """find, for a listing call: a new command may not be listed yet."""
        cmd = self.find(command_id)
        if not_listed_yet.get(command_id, 0) > 0:
            not_listed_yet[command_id] -= 1
            raise ApiError("InvalidCommandId", f"no command {command_id}")
        return cmd

    def op_ListCommands(self, body):
        with lock:
            self.listed(body["CommandId"])
            return {"Commands": [self.command_view(body["CommandId"])]}

    def op_ListCommandInvocations(self, body):
        with lock:
            cmd = self.listed(body["CommandId"])
            hidden = unlisted.get(body["CommandId"], set())
            return {"CommandInvocations": [
                {k: inv[k] for k in ("CommandId", "InstanceId", "Status", "StatusDetails")}
                for inv in cmd["invocations"].values() if inv["InstanceId"] not in hidden
            ]}

    def op_GetCommandInvocation(self, body):
        with lock:
            cmd = self.listed(body["CommandId"])
            if steps_of[body["CommandId"]] > 1 and not body.get("PluginName"):
                raise ApiError(
                    "InvalidPluginName",
                    "the document has more than one step: name the step (PluginName)",
                )
            inv = cmd["invocations"].get(body["InstanceId"])
            hidden = body["InstanceId"] in unlisted.get(body["CommandId"], set())
            if inv is None or hidden or inv["Status"] == "Pending":
                raise ApiError("InvocationDoesNotExist", "no invocation yet")
            return dict(inv)

    def op_CancelCommand(self, body):
        with lock:
            self.find(body["CommandId"])
        cancel(body["CommandId"])
        return {}


def cancel(command_id):
    with lock:
        cancelled.add(command_id)
        cmd = commands[command_id]
        for inv in cmd["invocations"].values():
            if inv["Status"] == "Pending":
                inv.update(Status="Cancelled", StatusDetails="Cancelled")
        for (cid, _), proc in running.items():
            if cid == command_id:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--documents", required=True)
    p.add_argument("--config", required=True)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.documents = a.documents
    with open(a.config, encoding="utf-8") as f:
        server.config = json.load(f)
    server.serve_forever()


if __name__ == "__main__":
    main()
