# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The YAML examples of the documentation parse and use real options.

Every ```yaml block of docs/*.md, README.md and roles/*/README.md must be valid
YAML. In it, every task of a diskimage.loop module may use only the options
(and aliases) of that module's argument_spec - read from the module itself, by
calling its main() with AnsibleModule replaced - with values among the choices
where there are choices, and must give the required ones. Every use of a role of
the collection may set only the variables of its meta/argument_specs.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import importlib
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "diskimage.loop."
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
               for p in glob.glob(os.path.join(ROOT, "roles", "*", "meta", "argument_specs.yml")))

# What a play's role entry or an include_role/import_role task may carry besides role variables.
ROLE_KEYWORDS = {
    "role", "name", "vars", "tags", "when", "become", "become_user", "become_method", "delegate_to",
    "environment", "ignore_errors", "any_errors_fatal", "check_mode", "diff", "no_log", "collections",
    "apply", "tasks_from", "defaults_from", "vars_from", "handlers_from", "allow_duplicates", "public",
    "rolespec_validate",
}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```[ \t]*(?P<lang>[A-Za-z0-9_+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)


def doc_files():
    files = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    files.append(os.path.join(ROOT, "README.md"))
    files += sorted(glob.glob(os.path.join(ROOT, "roles", "*", "README.md")))
    return [f for f in files if os.path.isfile(f)]


def yaml_blocks(text):
    """(line number, body) of every ```yaml / ```yml block of a Markdown text."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("lang").lower() in ("yaml", "yml"):
            indent = len(match.group("indent"))
            body = "\n".join(line[indent:] for line in match.group("body").splitlines())
            blocks.append((text.count("\n", 0, match.start()) + 1, body))
    return blocks


class _Captured(Exception):
    pass


def _spy_init(self, argument_spec=None, *args, **kwargs):
    """Stands in for AnsibleModule.__init__ (also under a subclass): records the
    argument_spec that main() passes and stops main() there."""
    raise _Captured(argument_spec or {}, kwargs)


_SPECS = {}


def module_spec(name):
    """The argument_spec a module's main() hands to AnsibleModule."""
    if name not in _SPECS:
        from ansible.module_utils import basic
        module = importlib.import_module("ansible_collections.diskimage.loop.plugins.modules.%s" % name)
        saved = basic.AnsibleModule.__init__
        basic.AnsibleModule.__init__ = _spy_init
        try:
            module.main()
        except _Captured as captured:
            _SPECS[name] = captured.args[0]
        else:
            raise AssertionError("%s: main() did not create an AnsibleModule" % name)
        finally:
            basic.AnsibleModule.__init__ = saved
    return _SPECS[name]


def role_spec(name):
    with open(os.path.join(ROOT, "roles", name, "meta", "argument_specs.yml")) as handle:
        return yaml.safe_load(handle)["argument_specs"]["main"]["options"]


def _templated(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_options(where, values, spec, errors, check_required=True):
    """Check a dict of option values against an argument spec (Ansible's format)."""
    if _templated(values):
        return
    if not isinstance(values, dict):
        errors.append("%s: options must be a mapping, not %r" % (where, values))
        return
    names = {}
    for option, option_spec in spec.items():
        names[option] = option
        for alias in option_spec.get("aliases") or []:
            names[alias] = option
    given = set()
    for key, value in values.items():
        if key not in names:
            errors.append("%s: unknown option %r (known: %s)" % (where, key, ", ".join(sorted(spec))))
            continue
        option = names[key]
        given.add(option)
        option_spec = spec[option]
        choices = option_spec.get("choices")
        if choices and value is not None and not _templated(value):
            items = value if option_spec.get("type") == "list" and isinstance(value, list) else [value]
            for item in items:
                if item not in choices and str(item) not in [str(c) for c in choices]:
                    errors.append("%s: %s=%r is not one of %s" % (where, option, item, choices))
        sub = option_spec.get("options") or option_spec.get("suboptions")
        if sub and value is not None and not _templated(value):
            if option_spec.get("type") == "list":
                for index, item in enumerate(value if isinstance(value, list) else [value]):
                    check_options("%s.%s[%d]" % (where, option, index), item, sub, errors)
            else:
                check_options("%s.%s" % (where, option), value, sub, errors)
    if check_required:
        for option, option_spec in spec.items():
            if option_spec.get("required") and option not in given:
                errors.append("%s: required option %r is missing" % (where, option))


def _task_args(task, key):
    args = task[key]
    if args is None:
        args = {}
    elif isinstance(args, str) and not _templated(args):
        from ansible.parsing.splitter import parse_kv
        args = parse_kv(args)
    if isinstance(task.get("args"), dict) and isinstance(args, dict):
        args = dict(task["args"], **args)
    return args


def check_document(where, data, errors, counts):
    """Walk a parsed YAML document; check module tasks and role uses. ``counts``
    collects how many module tasks and role uses were checked, by name."""
    if isinstance(data, list):
        for index, item in enumerate(data):
            check_document("%s[%d]" % (where, index), item, errors, counts)
        return
    if not isinstance(data, dict):
        return
    for key in data:
        if isinstance(key, str) and key.startswith(PREFIX):
            name = key[len(PREFIX):]
            label = "%s: task %r (%s)" % (where, data.get("name", "unnamed"), key)
            if name in MODULES:
                counts[key] = counts.get(key, 0) + 1
                check_options(label, _task_args(data, key), module_spec(name), errors)
            elif name not in ROLES:
                errors.append("%s: there is no module %s" % (label, key))
    role = data.get("role")
    if isinstance(role, str) and role.startswith(PREFIX):
        check_role_use("%s: role %s" % (where, role), role, data, errors, counts, ROLE_KEYWORDS)
    for include in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
        args = data.get(include)
        if isinstance(args, dict) and str(args.get("name", "")).startswith(PREFIX):
            check_role_use("%s: %s %s" % (where, include, args["name"]), args["name"], data.get("vars") or {},
                           errors, counts, set())
    # A mapping of role variables on its own (a fragment of a role entry, or play vars).
    for role_name in ROLES:
        own = dict((k, v) for k, v in data.items() if isinstance(k, str) and k.startswith(role_name + "_"))
        if own and not (isinstance(role, str) and role == PREFIX + role_name):
            check_options("%s: variables of %s" % (where, role_name), own, role_spec(role_name), errors,
                          check_required=False)
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            check_document("%s.%s" % (where, key), value, errors, counts)


def check_role_use(where, role, entry, errors, counts, keywords):
    name = role[len(PREFIX):]
    if name not in ROLES:
        errors.append("%s: there is no role %s" % (where, role))
        return
    counts[role] = counts.get(role, 0) + 1
    variables = dict((k, v) for k, v in entry.items() if k not in keywords)
    if isinstance(entry.get("vars"), dict) and "vars" in keywords:
        variables.update(entry["vars"])
    check_options(where, variables, role_spec(name), errors)


def check_markdown(path, errors, counts):
    with open(path) as handle:
        text = handle.read()
    rel = os.path.relpath(path, ROOT)
    blocks = yaml_blocks(text)
    for line, body in blocks:
        where = "%s:%d" % (rel, line)
        try:
            documents = list(yaml.safe_load_all(body))
        except yaml.YAMLError as exc:
            errors.append("%s: not valid YAML: %s" % (where, exc))
            continue
        for document in documents:
            check_document(where, document, errors, counts)
    return len(blocks)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_yaml_examples(path):
    errors, counts = [], {}
    check_markdown(path, errors, counts)
    assert not errors, "\n".join(errors)


def test_every_module_and_role_has_an_example():
    counts = {}
    blocks = 0
    for path in doc_files():
        blocks += check_markdown(path, [], counts)
    assert blocks >= 10
    missing = [PREFIX + name for name in MODULES + ROLES if PREFIX + name not in counts]
    assert not missing, "no example in the documentation uses %s" % ", ".join(missing)


def test_seed_guide_covers_the_seed_commands():
    path = os.path.join(ROOT, "docs", "seed-commands.md")
    with open(path) as handle:
        text = handle.read()
    for command in ("losetup -a", "losetup -j", "losetup -f", "losetup -d", "losetup -c", "--sizelimit",
                    "losetup -r", "kpartx -a", "kpartx -d", "kpartx -l", "dmsetup remove", "mkfs", "mount -o loop",
                    "umount"):
        assert command in text, "docs/seed-commands.md does not mention %s" % command
    counts = {}
    check_markdown(path, [], counts)
    for module in MODULES:
        assert counts.get(PREFIX + module, 0) >= 2, "docs/seed-commands.md has few examples of %s" % module


def test_argument_specs_are_read_from_the_modules():
    for name in MODULES:
        spec = module_spec(name)
        assert spec, name
        assert all(isinstance(option, dict) for option in spec.values())


UNKNOWN = """
Text.

```yaml
- name: Attach
  diskimage.loop.loop_device:
    file: /srv/images/disk.img
    read_only: true
    offest: 1MiB
```
"""


def test_checker_fails_on_an_unknown_option():
    errors, counts = [], {}
    for line, body in yaml_blocks(UNKNOWN):
        check_document("example:%d" % line, yaml.safe_load(body), errors, counts)
    assert counts == {"diskimage.loop.loop_device": 1}
    assert len(errors) == 1 and "unknown option 'offest'" in errors[0]


@pytest.mark.parametrize("task, message", [
    ({"diskimage.loop.loop_device": {"file": "/a", "state": "gone"}}, "state='gone' is not one of"),
    ({"diskimage.loop.image_mount": {"src": "/a"}}, "required option 'path' is missing"),
    ({"diskimage.loop.image_partitions": {"src": "/a", "layout": {"lable": "dos", "partitions": []}}},
     "unknown option 'lable'"),
    ({"diskimage.loop.no_such_module": {}}, "there is no module"),
    ({"role": "diskimage.loop.image_build", "image_build_path": "/a", "image_build_size": "1G",
      "image_build_partitions": [{"sise": "1G"}]}, "unknown option 'sise'"),
    ({"image_customize_mountz": []}, "unknown option 'image_customize_mountz'"),
])
def test_checker_finds_mistakes(task, message):
    errors = []
    check_document("example", [task], errors, {})
    assert any(message in error for error in errors), errors


def test_checker_accepts_aliases_and_templates():
    errors = []
    check_document("example", [
        {"diskimage.loop.loop_device": {"image": "{{ path }}", "state": "{{ wanted }}"}},
        {"diskimage.loop.image_mount": {"image": "/a", "mount_point": "/mnt", "partition": 2}},
        {"diskimage.loop.loop_device_info": None},
    ], errors, {})
    assert not errors, errors
