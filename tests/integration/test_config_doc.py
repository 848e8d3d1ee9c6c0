"""docs/configuration.md says it lists every key (issue 13, point 6: `auth_cache_ttl` and
`default_domain` were missing). The keys the parser accepts are the `keys[]` tables of
core/config/config*.c (cfg_check_keys refuses any other) and, for a domain's settings,
the schema `sluice check --dump-schema` prints; every one must be in the page:

 * a top-level key (cfg_walk_cb's table) and a domain key (the schema's first level) as
   a row of a table (| `key` |) or a section heading (## key);
 * a key of a nested table (limits, tls, listeners, ...; a domain's ldap, oauth2,
   limits) named in backquotes somewhere on the page, or as `key = ` in an example cell.
"""
import re
import subprocess

from conftest import ROOT, SLUICE

DOC = (ROOT / 'docs' / 'configuration.md').read_text()


def c_key_tables():
    """{function name: [keys]} of every `static const char *const keys[]` table."""
    out = {}
    for c in sorted((ROOT / 'core' / 'config').glob('config*.c')):
        for m in re.finditer(r'\n(\w+)\([^)]*\)\s*\{\s*static const char \*const keys\[\]\s*='
                             r'\s*\{(.*?)\};', c.read_text(), re.S):
            out[m.group(1)] = re.findall(r'"([a-z_0-9]+)"', m.group(2))
    return out


def is_row_or_heading(key):
    return re.search(r'^\| `%s` \|' % key, DOC, re.M) or re.search(r'^## %s$' % key, DOC, re.M)


def is_named(key):
    return re.search(r'`%s`' % key, DOC) or re.search(r'[{ ,]%s = ' % key, DOC)


def test_every_top_level_key_the_parser_accepts_is_a_row_of_the_page():
    tables = c_key_tables()
    top = tables['cfg_walk_cb']
    assert 'hostname' in top and 'auth_cache_ttl' in top, top  # the table was found
    assert [k for k in top if not is_row_or_heading(k)] == []


def test_every_key_of_a_nested_table_is_named_on_the_page():
    missing = {f: [k for k in keys if not is_named(k)]
               for f, keys in c_key_tables().items() if f != 'cfg_walk_cb'}
    assert len(missing) >= 5, missing  # the tables were found
    assert {f: ks for f, ks in missing.items() if ks} == {}


def test_every_domain_key_of_the_schema_is_a_row_and_its_subkeys_are_named():
    schema = subprocess.run([SLUICE, 'check', '--dump-schema'], capture_output=True,
                            text=True, check=True).stdout
    first = re.findall(r"^  \{ name = '(\w+)'", schema, re.M)
    nested = re.findall(r"^      \{ name = '(\w+)'", schema, re.M)
    assert 'enabled' in first and 'issuer' in nested, schema[:500]
    assert [k for k in first if not is_row_or_heading(k)] == []
    assert [k for k in nested if not is_named(k)] == []
