"""Documentation checks: every configuration key is documented in
tern.ini(5) and in etc/tern.ini, and every man page is clean mdoc."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlib  # noqa: E402

SRCDIR = os.environ.get("TERN_SRCDIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
TERND = os.environ.get("TERND", "ternd")


def effective_keys():
    """(section, key) pairs of the effective configuration, from -n."""
    out = subprocess.run([TERND, "-n", "-c",
                          os.path.join(SRCDIR, "etc", "tern.ini")],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError("ternd -n failed: " + out.stderr)
    keys, section = [], None
    for line in out.stdout.splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^(\w+)\s*=", line)
        if m:
            keys.append((section, m.group(1)))
    return keys


class DocsTest(unittest.TestCase):
    def test_keys_listed(self):
        keys = effective_keys()
        self.assertGreater(len(keys), 10)
        self.assertIn(("smtp", "listen"), keys)

    def test_every_key_in_man_page(self):
        with open(os.path.join(SRCDIR, "man", "tern.ini.5")) as f:
            page = f.read()
        missing = [k for s, k in effective_keys()
                   if not re.search(r"^\.It Cm %s\b" % re.escape(k), page,
                                    re.M)]
        self.assertEqual(missing, [], "keys missing from tern.ini(5)")

    def test_every_key_in_example(self):
        with open(os.path.join(SRCDIR, "etc", "tern.ini")) as f:
            text = f.read()
        sections, section = {}, None
        for line in text.splitlines():
            m = re.match(r"^\[(\w+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^#?\s*(\w+)\s*=", line)
            if m:
                sections.setdefault(section, set()).add(m.group(1))
        missing = [(s, k) for s, k in effective_keys()
                   if k not in sections.get(s, set())]
        self.assertEqual(missing, [], "keys missing from etc/tern.ini")

    @unittest.skipUnless(shutil.which("mandoc"), "mandoc not installed")
    def test_man_pages_lint_clean(self):
        mandir = os.path.join(SRCDIR, "man")
        pages = sorted(os.path.join(mandir, p) for p in os.listdir(mandir)
                       if re.search(r"\.\d$", p))
        self.assertGreaterEqual(len(pages), 3)
        for page in pages:
            out = subprocess.run(["mandoc", "-Tlint", "-W", "warning",
                                  page], capture_output=True, text=True)
            self.assertEqual(out.stdout + out.stderr, "",
                             "mandoc -Tlint " + page)

    def test_readme_quick_start(self):
        with open(os.path.join(SRCDIR, "README")) as f:
            text = f.read()
        self.assertIn("contrib/quickstart.sh run", text)
        self.assertIn("contrib/quickstart.sh test", text)


if __name__ == "__main__":
    sys.exit(ternlib.main(__name__))
