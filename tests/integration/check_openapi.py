#!/usr/bin/env python3
"""check_openapi.py - checks real aecd responses against openapi.yaml.

    check_openapi.py OPENAPI.yaml MANIFEST.json [--require-coverage]

MANIFEST is a JSON array of captured responses:
    {"method": "POST", "path": "/encode", "status": 200,
     "content_type": "application/json", "body_file": "r1.body"}
(body_file relative to the manifest's folder). For each one the response
object documented for (path, method, status) must exist, its media type
must be documented, and a JSON body must validate against the schema.
With --require-coverage, every documented operation must have at least one
2xx response in the manifest.

Python 3 standard library only: a small YAML reader for the subset the
document uses (block mappings and sequences, quoted and plain scalars,
flow sequences, block scalars | and >, comments) and a JSON Schema checker
for the keywords it uses ($ref, type (with lists), enum, const, required,
properties, additionalProperties, items, minItems, maxItems, minLength,
maxLength, pattern, minimum, maximum, allOf, anyOf, oneOf). An unknown
keyword in a schema is an error, so the document cannot silently outgrow
the checker. Exit status 0 when everything matches, 1 otherwise.
"""
import json
import os
import re
import sys

# ---- YAML subset ---------------------------------------------------------------


class YamlError(Exception):
    pass


def _strip_comment(s):
    """Removes a trailing ' #...' comment outside quotes."""
    quote = None
    for i, c in enumerate(s):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


def _scalar(s, lineno):
    s = s.strip()
    if s == "":
        return None
    if s[0] == "'":
        if not s.endswith("'") or len(s) < 2:
            raise YamlError(f"line {lineno}: unterminated single-quoted string")
        return s[1:-1].replace("''", "'")
    if s[0] == '"':
        if not s.endswith('"') or len(s) < 2:
            raise YamlError(f"line {lineno}: unterminated double-quoted string")
        return json.loads(s)
    if s[0] == "[":
        return _flow_seq(s, lineno)
    if s == "{}":
        return {}
    if s[0] in "{&*!|>%@`":
        raise YamlError(f"line {lineno}: unsupported YAML: {s!r}")
    if s in ("null", "~"):
        return None
    if s == "true":
        return True
    if s == "false":
        return False
    if re.fullmatch(r"[-+]?[0-9]+", s):
        return int(s)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?", s):
        return float(s)
    return s


def _flow_seq(s, lineno):
    if not s.endswith("]"):
        raise YamlError(f"line {lineno}: unterminated flow sequence")
    inner = s[1:-1].strip()
    if not inner:
        return []
    items, cur, quote = [], "", None
    for c in inner:
        if quote:
            cur += c
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            cur += c
        elif c == ",":
            items.append(cur)
            cur = ""
        elif c in "[]{}":
            raise YamlError(f"line {lineno}: nested flow collections are not supported")
        else:
            cur += c
    items.append(cur)
    return [_scalar(x, lineno) for x in items]


_KEY = re.compile(r"""^('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^\s'"#\[\]{},-][^#]*?|-[^\s][^#]*?)\s*:(?:\s+|$)(.*)$""")


class _Reader:
    def __init__(self, text):
        self.raw = text.split("\n")
        self.i = 0

    def _skip(self):
        while self.i < len(self.raw):
            line = self.raw[self.i]
            if line.strip() == "" or line.lstrip().startswith("#"):
                self.i += 1
                continue
            if "\t" in line[: len(line) - len(line.lstrip())]:
                raise YamlError(f"line {self.i + 1}: tab in indentation")
            return
        return

    def peek(self):
        """(indent, content, lineno) of the next meaningful line, or None."""
        self._skip()
        if self.i >= len(self.raw):
            return None
        line = self.raw[self.i]
        ind = len(line) - len(line.lstrip(" "))
        return ind, _strip_comment(line[ind:]), self.i + 1

    def node(self, ind):
        nxt = self.peek()
        if nxt is None or nxt[0] < ind:
            return None
        ind, content, _ = nxt
        if content == "-" or content.startswith("- "):
            return self.seq(ind)
        return self.mapping(ind, None)

    def block_scalar(self, header, parent_ind, lineno):
        style, chomp = header[0], header[1:].strip()
        if chomp not in ("", "-", "+"):
            raise YamlError(f"line {lineno}: unsupported block scalar header {header!r}")
        lines, block_ind = [], None
        while self.i < len(self.raw):
            line = self.raw[self.i]
            if line.strip() == "":
                lines.append("")
                self.i += 1
                continue
            ind = len(line) - len(line.lstrip(" "))
            if ind <= parent_ind:
                break
            if block_ind is None:
                block_ind = ind
            if ind < block_ind:
                raise YamlError(f"line {self.i + 1}: bad indentation in block scalar")
            lines.append(line[block_ind:])
            self.i += 1
        while lines and lines[-1] == "" and chomp != "+":
            lines.pop()
        if style == "|":
            text = "\n".join(lines)
        else:  # folded: single newlines become spaces, blank lines newlines
            out, para = [], []
            for ln in lines:
                if ln == "":
                    out.append(" ".join(para))
                    para = []
                else:
                    para.append(ln)
            out.append(" ".join(para))
            text = "\n".join(out)
        return text + ("" if chomp == "-" else "\n")

    def value(self, rest, ind, lineno):
        """The value after 'key:' or '- '."""
        if rest == "":
            nxt = self.peek()
            if nxt is None:
                return None
            if nxt[0] > ind:
                return self.node(nxt[0])
            if nxt[0] == ind and (nxt[1] == "-" or nxt[1].startswith("- ")):
                return self.seq(ind)
            return None
        if rest[0] in "|>":
            return self.block_scalar(rest, ind, lineno)
        return _scalar(rest, lineno)

    def mapping(self, ind, first):
        """A block mapping at indent ind. first: an already-read first line
        (content, lineno), for '- key: value' items."""
        out = {}
        while True:
            if first is not None:
                content, lineno = first
                first = None
            else:
                nxt = self.peek()
                if nxt is None or nxt[0] < ind:
                    return out
                if nxt[0] > ind:
                    raise YamlError(f"line {nxt[2]}: unexpected indentation")
                _, content, lineno = nxt
                if content == "-" or content.startswith("- "):
                    return out
                self.i += 1
            m = _KEY.match(content)
            if not m:
                raise YamlError(f"line {lineno}: expected 'key: value', got {content!r}")
            key = _scalar(m.group(1), lineno)
            if isinstance(key, (int, float)):
                key = m.group(1)
            if key in out:
                raise YamlError(f"line {lineno}: duplicate key {key!r}")
            out[key] = self.value(m.group(2).strip(), ind, lineno)

    def seq(self, ind):
        out = []
        while True:
            nxt = self.peek()
            if nxt is None or nxt[0] != ind or not (nxt[1] == "-" or nxt[1].startswith("- ")):
                return out
            _, content, lineno = nxt
            self.i += 1
            rest = content[1:].strip()
            if rest and _KEY.match(rest):
                out.append(self.mapping(ind + 2, (rest, lineno)))
            else:
                out.append(self.value(rest, ind, lineno))


def load_yaml(text):
    r = _Reader(text)
    doc = r.node(0)
    if r.peek() is not None:
        raise YamlError(f"line {r.peek()[2]}: unexpected content")
    return doc


# ---- JSON Schema subset -------------------------------------------------------------

KNOWN = {
    "$ref", "type", "enum", "const", "required", "properties", "additionalProperties",
    "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "allOf", "anyOf", "oneOf", "description", "default", "format",
    "contentMediaType", "contentEncoding", "example", "examples", "title",
}


def _resolve(doc, ref):
    if not ref.startswith("#/"):
        raise ValueError(f"unsupported $ref {ref}")
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _type_ok(t, v):
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    raise ValueError(f"unknown type {t}")


def validate(doc, schema, v, where, errors):
    unknown = set(schema) - KNOWN
    if unknown:
        errors.append(f"{where}: the checker does not know schema keywords {sorted(unknown)}")
        return
    if "$ref" in schema:
        validate(doc, _resolve(doc, schema["$ref"]), v, where, errors)
    for sub in schema.get("allOf", []):
        validate(doc, sub, v, where, errors)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            ok = 0
            for sub in schema[key]:
                e = []
                validate(doc, sub, v, where, e)
                ok += not e
            if (key == "anyOf" and ok == 0) or (key == "oneOf" and ok != 1):
                errors.append(f"{where}: matches {ok} of the {key} schemas")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(t, v) for t in types):
            errors.append(f"{where}: {json.dumps(v)[:80]} is not of type {types}")
            return
    if "const" in schema and v != schema["const"]:
        errors.append(f"{where}: {json.dumps(v)[:80]} != const {schema['const']!r}")
    if "enum" in schema and v not in schema["enum"]:
        errors.append(f"{where}: {json.dumps(v)[:80]} not in {schema['enum']}")
    if isinstance(v, dict):
        for k in schema.get("required", []):
            if k not in v:
                errors.append(f"{where}: missing required property '{k}'")
        props = schema.get("properties", {})
        for k, sub in props.items():
            if k in v:
                validate(doc, sub, v[k], f"{where}.{k}", errors)
        extra = schema.get("additionalProperties", True)
        for k in v:
            if k in props:
                continue
            if extra is False:
                errors.append(f"{where}: undocumented property '{k}'")
            elif isinstance(extra, dict):
                validate(doc, extra, v[k], f"{where}.{k}", errors)
    if isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, x in enumerate(v):
                validate(doc, schema["items"], x, f"{where}[{i}]", errors)
    if isinstance(v, str):
        if "minLength" in schema and len(v) < schema["minLength"]:
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errors.append(f"{where}: {v!r} does not match {schema['pattern']}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and v < schema["minimum"]:
            errors.append(f"{where}: {v} < minimum {schema['minimum']}")
        if "maximum" in schema and v > schema["maximum"]:
            errors.append(f"{where}: {v} > maximum {schema['maximum']}")


# ---- responses ------------------------------------------------------------------------


def _media_matches(documented, actual):
    if documented == actual:
        return True
    d, a = documented.split("/"), actual.split("/")
    return len(d) == 2 and len(a) == 2 and d[1] == "*" and d[0] == a[0]


def _template_matches(template, path):
    """Does a concrete path match a path template ('/v1/models/{name}')?"""
    if template == path:
        return True
    if "{" not in template:
        return False
    pattern = "^" + re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(template)) + "$"
    return re.match(pattern, path) is not None


def _find_path(doc, path):
    """The path item for a concrete path: an exact entry first, then a template."""
    paths = doc.get("paths", {})
    if path in paths:
        return paths[path]
    for template, item in paths.items():
        if _template_matches(template, path):
            return item
    return None


def check_response(doc, entry, body, errors):
    where = f"{entry['method']} {entry['path']} -> {entry['status']}"
    item = _find_path(doc, entry["path"])
    if item is None:
        if entry["status"] == 404:  # unknown paths: only the error contract applies
            _check_json(doc, {"$ref": "#/components/schemas/Error"}, body, where, errors)
            return
        errors.append(f"{where}: path not documented")
        return
    method = entry["method"].lower()
    op = item.get("get" if method == "head" else method)
    if op is None:
        if entry["status"] == 405:
            _check_json(doc, {"$ref": "#/components/schemas/Error"}, body, where, errors)
            return
        errors.append(f"{where}: method not documented")
        return
    responses = op.get("responses", {})
    status = str(entry["status"])
    resp = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
    if resp is None:
        errors.append(f"{where}: status {status} not documented for this operation")
        return
    while "$ref" in resp:
        resp = _resolve(doc, resp["$ref"])
    content = resp.get("content", {})
    ctype = (entry.get("content_type") or "").split(";")[0].strip().lower()
    if not content:
        return
    media = next((m for m in content if _media_matches(m, ctype)), None)
    if media is None:
        errors.append(f"{where}: Content-Type {ctype!r} not documented (only {list(content)})")
        return
    schema = content[media].get("schema")
    if schema is not None and (ctype == "application/json" or ctype.endswith("+json")):
        _check_json(doc, schema, body, where, errors)


def _check_json(doc, schema, body, where, errors):
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        errors.append(f"{where}: body is not JSON ({e})")
        return
    validate(doc, schema, value, where, errors)


def coverage(doc, manifest):
    missing = []
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            hit = any(_template_matches(path, e["path"])
                      and (path == e["path"] or e["path"] not in doc.get("paths", {}))
                      and e["method"].lower() in (method, "head" if method == "get" else "")
                      and 200 <= e["status"] < 300 for e in manifest)
            if not hit:
                missing.append(f"{method.upper()} {path}")
    return missing


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        try:
            doc = load_yaml(f.read())
        except YamlError as e:
            print(f"{argv[1]}: {e}", file=sys.stderr)
            return 1
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
        print(f"{argv[1]}: not an OpenAPI 3.1 document", file=sys.stderr)
        return 1
    with open(argv[2], encoding="utf-8") as f:
        manifest = json.load(f)
    base = os.path.dirname(os.path.abspath(argv[2]))
    errors = []
    for entry in manifest:
        with open(os.path.join(base, entry["body_file"]), "rb") as bf:
            body = bf.read()
        check_response(doc, entry, body, errors)
    if "--require-coverage" in argv:
        for op in coverage(doc, manifest):
            errors.append(f"{op}: no 2xx response in the manifest")
    for e in errors:
        print("FAIL " + e)
    print(f"check_openapi: {len(manifest)} responses checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
