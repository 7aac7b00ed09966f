"""Checks launch/perch.launch.py and launch/perch.launch.xml without a ROS installation (no launch
wheels exist on PyPI): Python syntax and structure via `ast`, XML well-formedness and the expected
elements via ElementTree, that every `$(var x)` is a declared argument, that the environment variables
they set are the ones perch-ros2 reads, and that the configs they name exist. Standard library only.
Exit 0 and `launch: N passed, 0 failed` when all is well."""
import ast
import os
import re
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LAUNCH = os.path.join(REPO, "launch")
ARGS = {"perch", "config", "namespace", "node_name", "detections_topic", "diagnostics_topic", "image_topic"}
REMAP_KEYS = {"detections", "diagnostics", "image/compressed"}


def rust_env_names():
    with open(os.path.join(REPO, "nodes", "ros2", "src", "config.rs")) as f:
        src = f.read()
    names = dict(re.findall(r'pub const (ENV_\w+): &str = "([A-Z0-9_]+)";', src))
    assert set(names) == {"ENV_NAMESPACE", "ENV_NODE_NAME", "ENV_REMAP"}, names
    return set(names.values())


def check_python(env_names):
    path = os.path.join(LAUNCH, "perch.launch.py")
    with open(path) as f:
        src = f.read()
    tree = ast.parse(src, path)
    compile(tree, path, "exec")
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs, f"{path}: no generate_launch_description()"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]

    def fname(c):
        return c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")

    declared = {c.args[0].value for c in calls if fname(c) == "DeclareLaunchArgument" and c.args
                and isinstance(c.args[0], ast.Constant)}
    assert ARGS <= declared, f"{path}: missing launch arguments {sorted(ARGS - declared)}"
    used = {c.args[0].value for c in calls if fname(c) in ("LaunchConfiguration", "arg") and c.args
            and isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"{path}: uses undeclared arguments {sorted(used - declared)}"
    procs = [c for c in calls if fname(c) == "ExecuteProcess"]
    assert len(procs) == 1, f"{path}: expected one ExecuteProcess, found {len(procs)}"
    kw = {k.arg: k.value for k in procs[0].keywords}
    cmd = [e.value for e in kw["cmd"].elts if isinstance(e, ast.Constant)]
    assert cmd == ["run", "--config"], f"{path}: cmd constants {cmd}"
    env_keys = {k.value for k in kw["additional_env"].keys}
    assert env_keys == env_names, f"{path}: sets {sorted(env_keys)}, perch-ros2 reads {sorted(env_names)}"
    remap_consts = "".join(n.value for n in ast.walk(kw["additional_env"]) if isinstance(n, ast.Constant)
                           and isinstance(n.value, str) and ":=" in n.value)
    keys = {k.strip(";") for k in re.findall(r"([\w/;]+):=", remap_consts)}
    assert keys == REMAP_KEYS, f"{path}: remaps {sorted(keys)}"
    # Paths built with os.path.join(REPO, "configs", "x.toml") must exist.
    configs = []
    for c in calls:
        if fname(c) == "join" and len(c.args) >= 2 and isinstance(c.args[0], ast.Name) and c.args[0].id == "REPO":
            parts = [a.value for a in c.args[1:] if isinstance(a, ast.Constant)]
            if parts and parts[0] == "configs":
                configs.append(os.path.join(REPO, *parts))
    assert configs, f"{path}: names no config under configs/"
    for p in configs:
        assert os.path.isfile(p), f"{path}: names {p}, which does not exist"
    return f"{len(declared)} arguments, configs {[os.path.relpath(p, REPO) for p in configs]}"


def check_xml(env_names):
    path = os.path.join(LAUNCH, "perch.launch.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "launch", f"{path}: root element is <{root.tag}>, expected <launch>"
    known = {"arg", "executable"}
    for child in root:
        assert child.tag in known, f"{path}: unexpected element <{child.tag}>"
    args = {a.get("name"): a.get("default") for a in root.findall("arg")}
    assert ARGS <= set(args), f"{path}: missing arguments {sorted(ARGS - set(args))}"
    exes = root.findall("executable")
    assert len(exes) == 1, f"{path}: expected one <executable>"
    exe = exes[0]
    cmd = exe.get("cmd", "")
    assert re.fullmatch(r"\$\(var perch\) run --config \$\(var config\)", cmd), f"{path}: cmd {cmd!r}"
    envs = {e.get("name"): e.get("value") for e in exe.findall("env")}
    assert set(envs) == env_names, f"{path}: sets {sorted(envs)}, perch-ros2 reads {sorted(env_names)}"
    text = ET.tostring(root, encoding="unicode")
    used = set(re.findall(r"\$\(var (\w+)\)", text))
    assert used <= set(args), f"{path}: uses undeclared arguments {sorted(used - set(args))}"
    keys = set(re.findall(r"([\w/]+):=", envs["PERCH_ROS2_REMAP"]))
    assert keys == REMAP_KEYS, f"{path}: remaps {sorted(keys)}"
    cfg = args["config"].replace("$(dirname)", LAUNCH)
    assert os.path.isfile(cfg), f"{path}: default config {args['config']} -> {cfg} does not exist"
    return f"{len(args)} arguments, config {os.path.relpath(os.path.realpath(cfg), REPO)}"


def main():
    env_names = rust_env_names()
    passed = failed = 0
    for name, check in (("perch.launch.py", check_python), ("perch.launch.xml", check_xml)):
        try:
            detail = check(env_names)
            print(f"PASS {name}: {detail}")
            passed += 1
        except (AssertionError, SyntaxError, ET.ParseError, OSError, KeyError) as e:
            print(f"FAIL {name}: {e}")
            failed += 1
    print(f"launch: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
