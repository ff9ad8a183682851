"""Rule families, one module each. Importing this package registers every rule it contains.

Listed by name rather than found with pkgutil: scanning the folder cost every `septum check` an import and a
directory read. tests/analysis/test_rules.py checks that every module of the folder is listed.
"""

from . import cred, crypto, ctrl, iso, live, med, priv, timing, vuln, waiver

MODULES = (cred, crypto, ctrl, iso, live, med, priv, timing, vuln, waiver)
