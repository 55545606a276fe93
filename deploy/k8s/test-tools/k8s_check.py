#!/usr/bin/env python3
"""Offline helpers of node/tests/k8s_manifests.rs, run with the venv of requirements.txt.

  k8s_check.py to-json IN.yaml OUT.json
      Every YAML document of IN (empty ones skipped) as one JSON array, for the Rust test.
  k8s_check.py crd-validate CRD_DIR FILE...
      Checks each custom resource in FILEs against the openAPIV3Schema of its CRD in CRD_DIR,
      strictly (fields the schema does not declare are errors, as with kubectl's
      --validate=strict), plus the checks Chaos Mesh's admission webhook adds for NetworkChaos
      and PodChaos (durations, selector mode values, container-kill's container names).
      Prints one INFO or ERROR line per resource; exits 1 on any error.
"""

import copy
import json
import os
import re
import sys

import jsonschema
import yaml


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def to_json(src, dst):
    with open(dst, "w") as f:
        json.dump(load_docs(src), f)
    return 0


def strict(schema):
    """OpenAPI v3 (structural CRD schema) to JSON Schema, rejecting undeclared fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    s.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        s.pop("type", None)
        s = {"anyOf": [{"type": "integer"}, {"type": "string"}], **s}
    if schema.get("nullable") and "type" in s:
        s["type"] = [s["type"], "null"]
    if (
        "properties" in s
        and "additionalProperties" not in s
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        s["additionalProperties"] = False
    return s


DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": DNS1123_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": DNS1123_SUBDOMAIN},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    "additionalProperties": False,
}

# Go's time.ParseDuration, which Chaos Mesh's webhook applies to every Duration field.
GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")


def webhook_errors(kind, spec):
    """The checks Chaos Mesh v2.8's admission webhook adds for these kinds (api/v1alpha1/*_webhook.go)."""
    errors = []
    duration = spec.get("duration")
    if duration and not GO_DURATION.match(duration):
        errors.append(f"spec.duration: {duration!r} is not a Go duration (e.g. 30s, 2m)")

    def selector(path, sel):
        mode, value = sel.get("mode"), sel.get("value", "")
        if mode == "fixed":
            if not value.isdigit() or int(value) <= 0:
                errors.append(f"{path}.value: mode fixed needs a count > 0, got {value!r}")
        elif mode in ("fixed-percent", "random-max-percent"):
            if not value.isdigit() or not 0 < int(value) <= 100:
                errors.append(f"{path}.value: mode {mode} needs a percentage in (0, 100], got {value!r}")

    selector("spec", spec)
    if isinstance(spec.get("target"), dict):
        selector("spec.target", spec["target"])
    if kind == "PodChaos" and spec.get("action") == "container-kill" and not spec.get("containerNames"):
        errors.append("spec.containerNames: container-kill needs the names of the containers")
    if kind == "NetworkChaos" and spec.get("action") != "partition":
        direction = spec.get("direction", "to")
        if direction in ("from", "both") and not spec.get("target"):
            errors.append(f"spec.direction: {direction} needs a target")
    return errors


def crd_validate(crd_dir, files):
    schemas = {}
    for name in sorted(os.listdir(crd_dir)):
        if not name.endswith((".yaml", ".yml")):
            continue
        for crd in load_docs(os.path.join(crd_dir, name)):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema["properties"]["metadata"] = OBJECT_META
                schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
                schemas[(f"{group}/{version['name']}", kind)] = (crd["metadata"]["name"], version["name"], schema)
    rc = 0
    for path in files:
        for doc in load_docs(path):
            key = (doc.get("apiVersion"), doc.get("kind"))
            what = f"{str(doc.get('kind')).lower()}/{(doc.get('metadata') or {}).get('name')}"
            if key not in schemas:
                print(f"ERROR {path} {what}: no CRD for apiVersion {key[0]} kind {key[1]} in {crd_dir}")
                rc = 1
                continue
            crd_name, version, schema = schemas[key]
            validator = jsonschema.Draft202012Validator(schema)
            errors = [
                f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
            ]
            errors += webhook_errors(doc["kind"], doc.get("spec") or {})
            if errors:
                for e in errors:
                    print(f"ERROR {path} {what} against CRD {crd_name} {version}: {e}")
                rc = 1
            else:
                print(f"INFO {path} {what} passed against CRD {crd_name} {version}")
    return rc


def main(argv):
    if len(argv) == 3 and argv[0] == "to-json":
        return to_json(argv[1], argv[2])
    if len(argv) >= 3 and argv[0] == "crd-validate":
        return crd_validate(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
