"""test/release_check.py - the release's files agree with each other and
META.json follows the PGXN Meta Spec 1.0.0 (https://pgxn.org/meta/spec.txt).

Usage: release_check.py ROOT DIST_ZIP

Debian has no PGXN validator, so the spec's rules are written out here:
required and allowed keys, SemVer versions, version ranges of prereqs, the
license strings, provides entries naming files that exist.  Then the
release's own rules: one version in the control file, the Makefile, META.json,
the client and the Python package; an install or update script chain that
reaches it; LICENSE the PostgreSQL License and named where users look;
CHANGELOG.md with a section per version; the archive `make dist` built.
Prints one line a check; exits 1 if any failed.
"""
import json
import os
import re
import subprocess
import sys
import zipfile

SEMVER = (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
          r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
            "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
            "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
            "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown"}
TOP_REQUIRED = {"name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"}
TOP_OPTIONAL = {"description", "generated_by", "tags", "no_index", "prereqs", "release_status",
                "resources"}

failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAILED: ") + what + ("" if ok else ": " + detail))
    if not ok:
        failures.append(what)


def is_semver(v):
    return isinstance(v, str) and re.fullmatch(SEMVER, v) is not None


def is_term(v):
    return isinstance(v, str) and re.fullmatch(r"[^/\\\s\x00-\x1f\x7f]{2,}", v) is not None


def is_version_range(v):
    if v == 0 or v == "0":
        return True
    if not isinstance(v, str):
        return False
    return all(re.fullmatch(r"(([=!]=|[<>]=?)\s*)?" + SEMVER, part.strip())
               for part in v.split(","))


def custom(key):
    return re.match(r"[xX]_.", key) is not None


def prereqs_errors(pre):
    """prereqs: phase -> relationship -> name -> version range."""
    phases = {"configure", "build", "test", "runtime", "develop"}
    rels = {"requires", "recommends", "suggests", "conflicts"}
    if not (isinstance(pre, dict) and pre and set(pre) <= phases):
        return ["prereqs: phases must be some of %s" % sorted(phases)]
    errs = []
    for ph, r in pre.items():
        if not (isinstance(r, dict) and r and set(r) <= rels):
            errs.append("prereqs.%s: relationships must be some of %s" % (ph, sorted(rels)))
            continue
        for rel, deps in r.items():
            if not (isinstance(deps, dict) and deps):
                errs.append("prereqs.%s.%s is not a non-empty object" % (ph, rel))
                continue
            for dep, v in deps.items():
                if not is_term(dep) or not is_version_range(v):
                    errs.append("prereqs.%s.%s.%s: %r is not a version range" % (ph, rel, dep, v))
    return errs


def meta_spec_errors(meta, root):
    """The PGXN Meta Spec 1.0.0's rules, as a list of what breaks them."""
    errs = []
    if not isinstance(meta, dict):
        return ["not an object"]
    for k in sorted(TOP_REQUIRED - meta.keys()):
        errs.append("missing required key %r" % k)
    for k in meta:
        if k not in TOP_REQUIRED | TOP_OPTIONAL and not custom(k):
            errs.append("unknown key %r" % k)
    if not is_term(meta.get("name")):
        errs.append("name is not a term")
    if not is_semver(meta.get("version")):
        errs.append("version is not SemVer")
    for k in ("abstract", "description", "generated_by"):
        if k in meta and not (isinstance(meta[k], str) and meta[k]):
            errs.append("%s is not a non-empty string" % k)
    m = meta.get("maintainer")
    if not ((isinstance(m, str) and m) or
            (isinstance(m, list) and m and all(isinstance(x, str) and x for x in m)
             and len(set(m)) == len(m))):
        errs.append("maintainer is not a string or a list of unique strings")
    lic = meta.get("license")
    if isinstance(lic, str):
        lic_ok = lic in LICENSES
    elif isinstance(lic, list):
        lic_ok = bool(lic) and all(x in LICENSES for x in lic) and len(set(lic)) == len(lic)
    elif isinstance(lic, dict):
        lic_ok = bool(lic) and all(isinstance(u, str) and "://" in u for u in lic.values())
    else:
        lic_ok = False
    if not lic_ok:
        errs.append("license is not one of the spec's strings, a list of them or name -> URL")
    prov = meta.get("provides")
    if not (isinstance(prov, dict) and prov):
        errs.append("provides is not a non-empty object")
    else:
        for ext, e in prov.items():
            if not is_term(ext):
                errs.append("provides: %r is not a term" % ext)
            if not isinstance(e, dict):
                errs.append("provides.%s is not an object" % ext)
                continue
            for k in e:
                if k not in ("file", "version", "abstract", "docfile", "docpath"):
                    errs.append("provides.%s: unknown key %r" % (ext, k))
            for k in ("file", "version"):
                if k not in e:
                    errs.append("provides.%s: missing %r" % (ext, k))
            if "version" in e and not is_semver(e["version"]):
                errs.append("provides.%s.version is not SemVer" % ext)
            for k in ("file", "docfile"):
                if k in e and not os.path.isfile(os.path.join(root, e[k])):
                    errs.append("provides.%s.%s: no file %s" % (ext, k, e[k]))
    spec = meta.get("meta-spec")
    if not (isinstance(spec, dict) and re.fullmatch(r"1\.0\.\d+", str(spec.get("version", "")))
            and set(spec) <= {"version", "url"}
            and spec.get("url", "https://pgxn.org/meta/spec.txt") in
            ("https://pgxn.org/meta/spec.txt", "http://pgxn.org/meta/spec.txt")):
        errs.append("meta-spec is not {version: 1.0.x, url: the spec's}")
    if "prereqs" in meta:
        errs += prereqs_errors(meta["prereqs"])
    if "release_status" in meta and meta["release_status"] not in ("stable", "testing", "unstable"):
        errs.append("release_status is not stable, testing or unstable")
    tags = meta.get("tags")
    if "tags" in meta and not (
            isinstance(tags, list) and tags and len(set(tags)) == len(tags) and
            all(isinstance(t, str) and 2 <= len(t) <= 255 and "/" not in t and "\\" not in t
                for t in tags)):
        errs.append("tags must be unique strings of 2 to 255 characters")
    ni = meta.get("no_index")
    if "no_index" in meta and not (isinstance(ni, dict) and ni and set(ni) <= {"file", "directory"}):
        errs.append("no_index must have file and/or directory")
    elif "no_index" in meta:
        for kind, paths in ni.items():
            for p in ([paths] if isinstance(paths, str) else paths):
                if not os.path.exists(os.path.join(root, p)):
                    errs.append("no_index.%s: %s does not exist" % (kind, p))
    if "resources" in meta:
        res = meta["resources"]
        if not (isinstance(res, dict) and res and
                all(k in ("homepage", "bugtracker", "repository") or custom(k) for k in res)):
            errs.append("resources: keys must be homepage, bugtracker, repository")
    return errs


def main():
    root, dist = sys.argv[1], sys.argv[2]
    read = lambda name: open(os.path.join(root, name), encoding="utf-8").read()

    meta = json.loads(read("META.json"))
    errs = meta_spec_errors(meta, root)
    check("META.json follows the PGXN Meta Spec 1.0.0", not errs, "; ".join(errs))
    # the checker itself refuses what the spec refuses
    broken = [dict(meta, version="0.2"), dict(meta, license="PostgreSQL"),
              {k: v for k, v in meta.items() if k != "provides"},
              dict(meta, prereqs={"runtime": {"requires": {"PostgreSQL": "15"}}}),
              dict(meta, provides={"pg_soup": {"file": "no-such.sql", "version": "0.2.0"}})]
    check("the META.json checker refuses 5 broken variants",
          all(meta_spec_errors(b, root) for b in broken))

    version = meta["version"]
    control = read("pg_soup.control")
    makefile = read("Makefile")
    init = read("python/pg_soup/__init__.py")
    client = subprocess.run([os.path.join(root, "client", "pg_soup"), "--version"],
                            capture_output=True, text=True).stdout.strip()
    found = {
        "pg_soup.control": re.search(r"^default_version = '([^']*)'$", control, re.M).group(1),
        "Makefile": re.search(r"^EXTVERSION = (\S+)$", makefile, re.M).group(1),
        "META.json provides": meta["provides"]["pg_soup"]["version"],
        "python/pg_soup": re.search(r'^__version__ = "([^"]*)"$', init, re.M).group(1),
        "pg_soup --version": client.removeprefix("pg_soup "),
    }
    check("one version everywhere (%s)" % version,
          all(v == version for v in found.values()), repr(found))

    # CREATE EXTENSION and ALTER EXTENSION UPDATE reach the version: an
    # install script and a chain of update scripts, all installed
    data = re.search(r"^DATA = (.*)$", makefile, re.M).group(1).replace("$(EXTENSION)", "pg_soup").split()
    scripts = [f for f in os.listdir(root) if re.fullmatch(r"pg_soup--.*\.sql", f)]
    installs = sorted(f[len("pg_soup--"):-4] for f in scripts if f.count("--") == 1)
    updates = dict(tuple(f[len("pg_soup--"):-4].split("--")) for f in scripts if f.count("--") == 2)
    v = installs[0] if installs else None
    chain = [v]
    while v in updates:
        v = updates[v]
        chain.append(v)
    check("install and update scripts lead to %s (%s)" % (version, " -> ".join(map(str, chain))),
          chain[-1] == version and all(s in data for s in scripts), repr((installs, updates, data)))
    check("the shipped 0.1.0 script is kept for updates", "0.1.0" in installs + list(updates))

    lic = read("LICENSE")
    check("LICENSE is the PostgreSQL License",
          lic.startswith("PostgreSQL License\n") and "Permission to use, copy, modify, and distribute" in lic)
    readme = read("README.md")
    check("README names the license",
          re.search(r"^## License\n\n[^#]*PostgreSQL License", readme, re.M) is not None)
    check("the control file's comments name the license", "PostgreSQL License" in control)
    check("META.json names the license", meta["license"] == "postgresql")
    check("the Python package names the license", '__license__ = "PostgreSQL"' in init)

    changelog = read("CHANGELOG.md")
    heads = re.findall(r"^## (\S+)", changelog, re.M)
    check("CHANGELOG.md: a section for every version, newest first",
          heads[:1] == [version] and "0.1.0" in heads and
          heads == sorted(heads, key=lambda s: tuple(map(int, s.split("."))), reverse=True),
          repr(heads))
    check("CHANGELOG.md says how to update", "ALTER EXTENSION pg_soup UPDATE" in changelog)

    prefix = "pg_soup-%s/" % version
    with zipfile.ZipFile(dist) as z:
        names = set(z.namelist())
        need = ["META.json", "LICENSE", "CHANGELOG.md", "README.md", "Makefile", "pg_soup.control",
                "src/pg_soup.c"] + scripts
        missing = [n for n in need if prefix + n not in names]
        check("make dist: %s with META.json, LICENSE, the control file and every script"
              % os.path.basename(dist), not missing and all(n.startswith(prefix) for n in names),
              "missing %r" % missing)
        check("make dist: META.json in the archive is this one",
              prefix + "META.json" in names and json.loads(z.read(prefix + "META.json")) == meta,
              "commit first: make dist archives HEAD")

    print("release: %d failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
