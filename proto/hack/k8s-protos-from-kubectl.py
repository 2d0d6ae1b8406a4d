#!/usr/bin/env python3
"""Writes the Kubernetes API `generated.proto` files under proto/vendor/ from the file
descriptors compiled into a kubectl release binary, and proto/src/kubernetes/go_fields.rs.

Every Kubernetes Go binary carries, for each `generated.proto` it links, the gzipped
`FileDescriptorProto` that gogo-protobuf embedded in `generated.pb.go`. Those descriptors are
upstream's wire schema at the binary's release tag: package, messages, field names, numbers,
labels, types and map shapes. This script prints them back as `.proto` text with the gogoproto
import and options dropped (they only steer Go code generation), which is exactly what upstream
publishes, minus upstream's comments.

Three facts about the Go types that the published files lose are written to go_fields.rs for
the control plane's protobuf-to-JSON decoder:
- Go pointers: `(gogoproto.nullable) = false` marks fields that are Go values. gogo-protobuf
  writes a value field even when it holds its zero value, so on the wire `""`/`0`/`false`
  there means "unset" (Go's JSON omits it), while a pointer field is written only when set and
  its zero value is meaningful (`DeleteOptions.gracePeriodSeconds: 0`). The singular scalar
  fields that are pointers are listed.
- Inline fields: an embedded Go struct tagged `json:",inline"` (`Volume.volumeSource`,
  `Probe.handler`) is one proto field but its fields sit in the parent's JSON object.
- JSON names that differ from the proto name (`BoundObjectReference.uID` is `uid`).
The last two come from the Go struct tags (`json:"..." protobuf:"..."`) in the binary,
matched to descriptor fields by proto field number and name; an embedded field (gogoproto
`customname` equal to its type's name) with no named tag is inline when the binary has a
name-less inline tag with its number (`EphemeralContainer.ephemeralContainerCommon`).

Usage: k8s-protos-from-kubectl.py KUBECTL VENDOR_DIR [--check]
  writes VENDOR_DIR/<import path> and VENDOR_DIR/../src/kubernetes/go_fields.rs
  --check  compare instead of writing; exit 1 if a vendored file differs.
Standard library only.
"""

import gzip
import os
import re
import subprocess
import sys
import zlib

# The files ferrolet vendors (upstream import paths). Imports must be in the list too.
FILES = [
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/authentication/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/batch/v1/generated.proto",
    "k8s.io/api/certificates/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/discovery/v1/generated.proto",
    "k8s.io/api/events/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
    "k8s.io/api/node/v1/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/scheduling/v1/generated.proto",
    "k8s.io/api/storage/v1/generated.proto",
]

GOGO = "github.com/gogo/protobuf/gogoproto/gogo.proto"
GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"

LABELS = {1: "optional", 2: "required", 3: "repeated"}
TYPES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64",
    7: "fixed32", 8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32",
    16: "sfixed64", 17: "sint32", 18: "sint64",
}
TYPE_MESSAGE, TYPE_ENUM = 11, 14


def fields(buf):
    """Yields (number, wire_type, value) for each field of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, wt, val


def varint(buf, i):
    out, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return out, i


def parse_field(buf):
    f = {"options": [], "go_value": False}
    for num, _, val in fields(buf):
        if num == 1:
            f["name"] = val.decode()
        elif num == 3:
            f["number"] = val
        elif num == 4:
            f["label"] = val
        elif num == 5:
            f["type"] = val
        elif num == 6:
            f["type_name"] = val.decode()
        elif num == 8:
            # FieldOptions: only gogoproto extensions (>= 65000) are expected.
            for onum, _, oval in fields(val):
                if onum == 65001:
                    f["go_value"] = oval == 0  # (gogoproto.nullable) = false
                if onum == 65004:
                    f["go_name"] = oval.decode()  # (gogoproto.customname)
                if onum < 65000:
                    raise ValueError(f"field {f.get('name')}: unexpected option {onum}")
        elif num == 10:
            pass  # json_name: protoc derives it again
        else:
            raise ValueError(f"field {f.get('name')}: unsupported descriptor field {num}")
    return f


def parse_message(buf):
    m = {"fields": [], "nested": [], "map_entry": False}
    for num, _, val in fields(buf):
        if num == 1:
            m["name"] = val.decode()
        elif num == 2:
            m["fields"].append(parse_field(val))
        elif num == 3:
            m["nested"].append(parse_message(val))
        elif num == 7:
            for onum, _, oval in fields(val):
                if onum == 7:
                    m["map_entry"] = bool(oval)
                elif onum < 64000:
                    raise ValueError(f"message {m.get('name')}: unexpected option {onum}")
        else:
            raise ValueError(f"message {m.get('name')}: unsupported descriptor field {num}")
    for n in m["nested"]:
        if not n["map_entry"]:
            raise ValueError(f"message {m['name']}: nested message {n['name']} is not a map entry")
    return m


def parse_file(buf):
    d = {"deps": [], "messages": [], "go_package": None}
    for num, _, val in fields(buf):
        if num == 1:
            d["name"] = val.decode()
        elif num == 2:
            d["package"] = val.decode()
        elif num == 3:
            d["deps"].append(val.decode())
        elif num == 4:
            d["messages"].append(parse_message(val))
        elif num == 8:
            for onum, _, oval in fields(val):
                if onum == 11:
                    d["go_package"] = oval.decode()
                elif onum < 63000:
                    raise ValueError(f"{d.get('name')}: unexpected file option {onum}")
        elif num == 12:
            if val.decode() != "proto2":
                raise ValueError(f"{d.get('name')}: syntax {val.decode()}")
        else:
            raise ValueError(f"{d.get('name')}: unsupported descriptor field {num}")
    return d


def descriptors(binary):
    """The embedded generated.proto descriptors of a Go binary, by file name."""
    data = open(binary, "rb").read()
    out = {}
    for m in re.finditer(re.escape(GZIP_MAGIC), data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():m.start() + (4 << 20)])
        except zlib.error:
            continue
        if not raw.startswith(b"\x0a"):
            continue
        n, i = varint(raw, 1)
        name = raw[i:i + n].decode(errors="replace")
        if name.endswith("/generated.proto"):
            out[name] = raw
    return out


def type_ref(package, type_name):
    if type_name.startswith("." + package + ".") and "." not in type_name[len(package) + 2:]:
        return type_name[len(package) + 2:]
    return type_name


def render(d, source):
    pkg = d["package"]
    out = [
        f"// {d['name']} — Kubernetes API wire schema, {source}.",
        "// Written by proto/hack/k8s-protos-from-kubectl.py from the file descriptor that upstream's",
        "// go-to-protobuf compiled into that release; upstream's comments are not reproduced",
        "// (see proto/README.md). Message, field names and numbers are upstream's: do not edit.",
        "",
        'syntax = "proto2";',
        "",
        f"package {pkg};",
        "",
    ]
    deps = [x for x in d["deps"] if x != GOGO]
    for dep in deps:
        out.append(f'import "{dep}";')
    if deps:
        out.append("")
    if d["go_package"]:
        out.append(f'option go_package = "{d["go_package"]}";')
        out.append("")
    for msg in d["messages"]:
        entries = {f".{pkg}.{msg['name']}.{n['name']}": n for n in msg["nested"]}
        out.append(f"message {msg['name']} {{")
        for f in msg["fields"]:
            entry = entries.get(f.get("type_name", ""))
            if entry is not None:
                k, v = sorted(entry["fields"], key=lambda x: x["number"])
                out.append(f"  map<{scalar_or_ref(pkg, k)}, {scalar_or_ref(pkg, v)}> {f['name']} = {f['number']};")
            else:
                out.append(f"  {LABELS[f['label']]} {scalar_or_ref(pkg, f)} {f['name']} = {f['number']};")
        out.append("}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def scalar_or_ref(pkg, f):
    if f["type"] in (TYPE_MESSAGE, TYPE_ENUM):
        return type_ref(pkg, f["type_name"])
    return TYPES[f["type"]]


def go_tags(binary):
    """(number, proto name) -> {(json name, inline)} from `json:"..." ... protobuf:"..."` tags,
    and the numbers of inline tags that name no proto field."""
    data = open(binary, "rb").read()
    named, nameless = {}, set()
    for js, _, pb in re.findall(rb'json:"([^"]*)"((?: [a-zA-Z]+:"[^"]*")*?) protobuf:"([^"]*)"', data):
        parts = pb.decode().split(",")
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        number = int(parts[1])
        name = next((p[5:] for p in parts[2:] if p.startswith("name=")), None)
        json_name, *json_options = js.decode().split(",")
        spec = (json_name, "inline" in json_options)
        if name is None:
            if spec[1]:
                nameless.add(number)
            continue
        named.setdefault((number, name), set()).add(spec)
    return named, nameless


def go_fields(parsed, tags, source):
    """Rust source with the Go pointer, inline and JSON-name tables (see the module doc)."""
    named, nameless = tags
    pointers, inline, renamed = [], [], []
    for d in parsed:
        for msg in d["messages"]:
            full = f"{d['package']}.{msg['name']}"
            for f in msg["fields"]:
                scalar = f["type"] not in (TYPE_MESSAGE, TYPE_ENUM, 12)  # 12: bytes
                if scalar and f["label"] == 1 and not f["go_value"]:
                    pointers.append((full, f["name"]))
                specs = named.get((f["number"], f["name"]), set())
                if len(specs) > 1:
                    raise ValueError(f"{full}.{f['name']}: conflicting Go tags {specs}")
                if specs:
                    json_name, is_inline = next(iter(specs))
                    if is_inline:
                        inline.append((full, f["name"]))
                    elif json_name not in ("-", f["name"]):
                        renamed.append((full, f["name"], json_name))
                    continue
                embedded = f.get("go_name") and f.get("type_name", "").endswith("." + f["go_name"])
                if embedded and f["number"] in nameless:
                    inline.append((full, f["name"]))
    out = [
        f"// Generated by proto/hack/k8s-protos-from-kubectl.py from {source}: do not edit.",
        "",
        "/// Singular scalar fields (`package.Message`, `field`) that are Go pointers in",
        "/// Kubernetes' API types, sorted; see [`super::is_go_pointer_field`].",
        "pub(super) const GO_POINTER_FIELDS: &[(&str, &str)] = &[",
    ]
    out += [f'    ("{m}", "{f}"),' for m, f in sorted(pointers)]
    out += [
        "];",
        "",
        "/// Fields whose Go struct is embedded with `json:\",inline\"`, sorted; see",
        "/// [`super::is_inline_field`].",
        "pub(super) const INLINE_FIELDS: &[(&str, &str)] = &[",
    ]
    out += [f'    ("{m}", "{f}"),' for m, f in sorted(inline)]
    out += [
        "];",
        "",
        "/// Fields whose JSON name is not their proto name (`message`, `field`, `json`), sorted;",
        "/// see [`super::json_name`].",
        "pub(super) const JSON_NAMES: &[(&str, &str, &str)] = &[",
    ]
    out += [f'    ("{m}", "{f}", "{j}"),' for m, f, j in sorted(renamed)]
    out.append("];")
    summary = f"{len(pointers)} pointers, {len(inline)} inline, {len(renamed)} renamed"
    return "\n".join(out) + "\n", summary


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    check = "--check" in sys.argv
    if len(args) != 2:
        sys.exit(__doc__)
    kubectl, vendor = args
    version = subprocess.run([kubectl, "version", "--client", "-o", "json"], check=True,
                             capture_output=True, text=True).stdout
    git_version = re.search(r'"gitVersion": "([^"]+)"', version).group(1)
    git_commit = re.search(r'"gitCommit": "([^"]+)"', version).group(1)
    source = f"Kubernetes {git_version} (kubernetes/kubernetes {git_commit})"
    found = descriptors(kubectl)
    differs = False
    parsed = []
    for name in FILES:
        if name not in found:
            sys.exit(f"{kubectl} carries no descriptor for {name}")
        d = parse_file(found[name])
        missing = [x for x in d["deps"] if x != GOGO and x not in FILES]
        if missing:
            sys.exit(f"{name} imports {missing}, which are not in FILES")
        parsed.append(d)
        differs |= write(os.path.join(vendor, name), render(d, source), check,
                         f"{len(d['messages'])} messages")
    table, summary = go_fields(parsed, go_tags(kubectl), source)
    rs = os.path.join(vendor, "..", "src", "kubernetes", "go_fields.rs")
    differs |= write(os.path.normpath(rs), table, check, summary)
    sys.exit(1 if differs else 0)


def write(path, text, check, what):
    """Writes (or with check, compares) one output file; True when a checked file differs."""
    if check:
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            print(f"differs: {path}")
            return True
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    print(f"wrote {path}: {what}")
    return False


if __name__ == "__main__":
    main()
