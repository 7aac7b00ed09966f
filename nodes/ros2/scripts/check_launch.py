"""Checks launch/perch.launch.py and launch/perch.launch.xml without a ROS installation (no launch
wheels exist on PyPI). Standard library only.

* Statically: Python syntax and structure via `ast`, XML well-formedness and the expected elements,
  that every launch argument used is declared, that the environment variables set are the ones
  perch-ros2 reads, and that the configs named exist.
* By running them: the Python file's `generate_launch_description()` runs against a minimal stand-in
  of the `launch` API (only what the file uses), and the XML file's `$(var)`, `$(dirname)` and
  `$(eval)` substitutions, `if`/`unless` conditions and command-line splitting are evaluated the way
  launch_xml does, for several sets of arguments (defaults; conf/iou/model given; source given;
  relative paths from another directory). The command each file would start is compared with the
  expected one, and with `--perch BIN` it is handed to that perch binary (plus `--help`) to prove
  perch accepts every flag and value.

Exit 0 and `launch: N passed, 0 failed` when all is well."""
import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import types
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LAUNCH = os.path.join(REPO, "launch")
ARGS = {"perch", "config", "conf", "iou", "model", "source", "namespace", "node_name", "detections_topic",
        "diagnostics_topic", "image_topic"}
REMAP_KEYS = {"detections", "diagnostics", "image/compressed"}


def rust_env_names():
    with open(os.path.join(REPO, "nodes", "ros2", "src", "config.rs")) as f:
        src = f.read()
    names = dict(re.findall(r'pub const (ENV_\w+): &str = "([A-Z0-9_]+)";', src))
    assert set(names) == {"ENV_NAMESPACE", "ENV_NODE_NAME", "ENV_REMAP"}, names
    return set(names.values())


# Argument sets every file is run with, and the perch flags each must produce (None: not passed;
# "" passed empty, which perch reads as not given). Paths: relative to the launching directory.
def cases(workdir):
    model_rel = os.path.relpath(os.path.join(REPO, "models", "yolov12n"), workdir)
    return [
        ("defaults", {}, {}),
        ("conf, iou, model", {"conf": "0.5", "iou": "0.6", "model": model_rel},
         {"--conf": "0.5", "--iou": "0.6", "--model": os.path.join(REPO, "models", "yolov12n")}),
        ("config by relative path", {"config": os.path.relpath(os.path.join(REPO, "configs", "ros2.toml"), workdir)},
         {}),
        ("source", {"source": "/dev/video0"}, {"--source": "/dev/video0"}),
    ]


def flag_values(argv):
    out = {}
    for i, a in enumerate(argv):
        if a.startswith("--") and i + 1 < len(argv):
            out[a] = argv[i + 1]
    return out


def check_argv(name, case, argv, expect, env, env_names, defaults, overrides):
    assert argv[1:3] == ["run", "--config"], f"{name} [{case}]: argv {argv}"
    config = overrides.get("config", defaults["config"])
    assert os.path.realpath(argv[3]) == os.path.realpath(config if os.path.isabs(config) else os.path.join(os.getcwd(), config)), \
        f"{name} [{case}]: --config {argv[3]!r}"
    assert os.path.isfile(argv[3]), f"{name} [{case}]: config {argv[3]} does not exist from {os.getcwd()}"
    flags = flag_values(argv[4:])
    for flag in ("--conf", "--iou", "--model", "--source"):
        want = expect.get(flag)
        got = flags.get(flag)
        if want is None:
            assert got in (None, ""), f"{name} [{case}]: {flag} {got!r}, expected not given"
        elif flag == "--model":
            assert got and os.path.realpath(got) == os.path.realpath(want), f"{name} [{case}]: --model {got!r}"
        else:
            assert got == want, f"{name} [{case}]: {flag} {got!r}, expected {want!r}"
    assert set(env) == env_names, f"{name} [{case}]: sets {sorted(env)}, perch-ros2 reads {sorted(env_names)}"
    keys = set(re.findall(r"([\w/]+):=", env["PERCH_ROS2_REMAP"]))
    assert keys == REMAP_KEYS, f"{name} [{case}]: remaps {sorted(keys)}"


# ---- Python: run the file against a stand-in of the launch API --------------------------------

def stand_in_launch():
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    subs = types.ModuleType("launch.substitutions")

    class LaunchDescription(list):
        pass

    class DeclareLaunchArgument:
        def __init__(self, name, default_value=None, description=""):
            self.name, self.default_value, self.description = name, default_value, description

    class ExecuteProcess:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class Node:
        """launch_ros.actions.Node: a ROS package's executable (the camera driver, the consumer)."""
        def __init__(self, package, executable, **kwargs):
            self.package, self.executable, self.node_kwargs = package, executable, kwargs

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument, actions.ExecuteProcess, actions.OpaqueFunction = \
        DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
    subs.LaunchConfiguration = LaunchConfiguration
    launch.actions, launch.substitutions = actions, subs
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = Node
    launch_ros.actions = ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": subs,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


STAND_IN_MODULES = ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions")


def launch_actions(path, overrides):
    """Run a launch file's generate_launch_description() and its OpaqueFunctions against the stand-in;
    returns the declared arguments and every action it would start (processes and nodes)."""
    saved = {k: sys.modules.get(k) for k in STAND_IN_MODULES}
    sys.modules.update(stand_in_launch())
    try:
        ns = {"__file__": path, "__name__": "perch_launch"}
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), ns)
        desc = ns["generate_launch_description"]()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    declared = {a.name: a.default_value for a in desc if hasattr(a, "default_value")}
    context = dict(declared)
    context.update(overrides)
    started = []
    for item in desc:
        if hasattr(item, "function"):
            started += item.function(context)
        elif hasattr(item, "kwargs") or hasattr(item, "node_kwargs"):
            started.append(item)
    return declared, started


def run_python(path, overrides):
    """The one process a launch file starts: its declared arguments, command line and environment."""
    declared, started = launch_actions(path, overrides)
    procs = [p for p in started if hasattr(p, "kwargs")]
    assert len(procs) == 1, f"{path}: starts {len(procs)} processes, expected 1"
    kw = procs[0].kwargs
    return declared, [str(a) for a in kw["cmd"]], {k: str(v) for k, v in kw["additional_env"].items()}


def check_python(env_names, perch):
    path = os.path.join(LAUNCH, "perch.launch.py")
    with open(path) as f:
        src = f.read()
    tree = ast.parse(src, path)
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs, f"{path}: no generate_launch_description()"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    fname = lambda c: c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")
    declared = {c.args[0].value for c in calls if fname(c) == "DeclareLaunchArgument" and c.args
                and isinstance(c.args[0], ast.Constant)}
    assert ARGS <= declared, f"{path}: missing launch arguments {sorted(ARGS - declared)}"
    used = {c.args[0].value for c in calls if fname(c) in ("LaunchConfiguration", "value") and c.args
            and isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"{path}: uses undeclared arguments {sorted(used - declared)}"
    runs = 0
    with tempfile.TemporaryDirectory() as elsewhere:
        cwd = os.getcwd()
        os.chdir(elsewhere)  # `ros2 launch` from a directory that is not the repository
        try:
            for case, overrides, expect in cases(elsewhere):
                defaults, argv, env = run_python(path, overrides)
                check_argv(path, case, argv, expect, env, env_names, defaults, overrides)
                runs += try_perch(perch, argv, f"perch.launch.py [{case}]")
        finally:
            os.chdir(cwd)
    return f"{len(declared)} arguments, {len(cases('/'))} argument sets, {runs} accepted by perch"


# ---- perch_node.launch.py: camera driver -> perch (kind = "ros2") -> consumer ------------------

NODE_ARGS = {"perch", "config", "image_topic", "conf", "iou", "namespace", "node_name", "detections_topic",
             "camera", "camera_package", "camera_executable", "consumer_package", "consumer_executable"}


def check_node_launch(env_names, perch):
    path = os.path.join(LAUNCH, "perch_node.launch.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    fname = lambda c: c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")
    declared = {c.args[0].value for c in calls if fname(c) == "DeclareLaunchArgument" and c.args and isinstance(c.args[0], ast.Constant)}
    assert NODE_ARGS <= declared, f"{path}: missing launch arguments {sorted(NODE_ARGS - declared)}"
    used = {c.args[0].value for c in calls if fname(c) in ("LaunchConfiguration", "value") and c.args and isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"{path}: uses undeclared arguments {sorted(used - declared)}"
    with open(os.path.join(REPO, "configs", "ros2-node.toml")) as f:
        cfg = f.read()
    assert re.search(r'^kind = "ros2"$', cfg, re.M) and re.search(r"^enabled = true$", cfg, re.M), \
        "configs/ros2-node.toml: expected [source] kind = \"ros2\" and [ros2] enabled = true"
    # (case, overrides, expected: camera started?, consumer started?, source.topic, detections the consumer gets)
    cases = [
        ("defaults", {}, True, False, "/camera/image_raw", None),
        ("no camera, compressed topic", {"camera": "false", "image_topic": "/robot1/front/image_raw/compressed"},
         False, False, "/robot1/front/image_raw/compressed", None),
        ("consumer, relative detections in a namespace", {"consumer_package": "my_pkg", "consumer_executable": "follow",
         "namespace": "/robot1", "conf": "0.5"}, True, True, "/camera/image_raw", "/robot1/detections"),
        ("absolute detections topic", {"consumer_package": "p", "consumer_executable": "e", "detections_topic": "/dets"},
         True, True, "/camera/image_raw", "/dets"),
    ]
    runs = 0
    with tempfile.TemporaryDirectory() as elsewhere:
        cwd = os.getcwd()
        os.chdir(elsewhere)
        try:
            for case, overrides, camera, consumer, topic, dets in cases:
                _, started = launch_actions(path, overrides)
                procs = [a for a in started if hasattr(a, "kwargs")]
                nodes = [a for a in started if hasattr(a, "node_kwargs")]
                assert len(procs) == 1, f"{path} [{case}]: {len(procs)} perch processes"
                assert len(nodes) == camera + consumer, f"{path} [{case}]: {len(nodes)} nodes, expected {camera + consumer}"
                argv = [str(x) for x in procs[0].kwargs["cmd"]]
                assert argv[1:3] == ["run", "--config"] and os.path.isfile(argv[3]), f"{path} [{case}]: argv {argv}"
                flags = flag_values(argv[4:])
                assert flags.get("--set") == f'source.topic="{topic}"', f"{path} [{case}]: --set {flags.get('--set')!r}"
                assert flags.get("--conf") == overrides.get("conf"), f"{path} [{case}]: --conf {flags.get('--conf')!r}"
                env = {k: str(v) for k, v in procs[0].kwargs["additional_env"].items()}
                assert set(env) == env_names, f"{path} [{case}]: sets {sorted(env)}, perch-ros2 reads {sorted(env_names)}"
                assert env["PERCH_ROS2_REMAP"] == "detections:=" + overrides.get("detections_topic", "detections")
                if camera:
                    cam = nodes[0]
                    assert (cam.package, cam.executable) == ("usb_cam", "usb_cam_node_exe"), f"{path} [{case}]: camera {cam.package}"
                    assert ("image_raw", topic) in cam.node_kwargs["remappings"], f"{path} [{case}]: camera remaps"
                if consumer:
                    remaps = dict(nodes[-1].node_kwargs["remappings"])
                    assert remaps == {"image": topic, "detections": dets}, f"{path} [{case}]: consumer remaps {remaps}"
                runs += try_perch(perch, argv, f"perch_node.launch.py [{case}]")
        finally:
            os.chdir(cwd)
    return f"{len(declared)} arguments, {len(cases)} argument sets, {runs} accepted by perch"


# ---- XML: evaluate substitutions as launch_xml does ---------------------------------------------

def parse_subst(text, i=0, stop=None):
    """Parse `text` from `i` into a list of parts: str, or ("subst", name, [args]) where each arg is
    itself a list of parts. Stops at `stop` (")" inside a substitution)."""
    parts, buf = [], ""
    while i < len(text):
        if text.startswith("$(", i):
            if buf:
                parts.append(buf)
                buf = ""
            i += 2
            m = re.match(r"[\w-]+", text[i:])
            name = m.group(0)
            i += len(name)
            args = []
            while True:
                while i < len(text) and text[i] == " ":
                    i += 1
                if text[i] == ")":
                    i += 1
                    break
                if text[i] == "'":
                    # A quoted argument: \' is a quote, $(...) inside is substituted.
                    i += 1
                    arg, abuf = [], ""
                    while text[i] != "'":
                        if text.startswith("\\'", i):
                            abuf += "'"
                            i += 2
                        elif text.startswith("$(", i):
                            if abuf:
                                arg.append(abuf)
                                abuf = ""
                            sub, i = parse_subst(text, i, stop="one")
                            arg += sub
                        else:
                            abuf += text[i]
                            i += 1
                    i += 1
                    if abuf:
                        arg.append(abuf)
                    args.append(arg)
                else:
                    m = re.match(r"[^ )]+", text[i:])
                    args.append([m.group(0)])
                    i += len(m.group(0))
            parts.append(("subst", name, args))
            if stop == "one":
                return parts, i
        else:
            buf += text[i]
            i += 1
    if buf:
        parts.append(buf)
    return parts, i


def evaluate(parts, values):
    out = ""
    for p in parts:
        if isinstance(p, str):
            out += p
            continue
        _, name, args = p
        args = [evaluate(a, values) for a in args]
        if name == "var":
            out += values[args[0]]
        elif name == "dirname":
            out += LAUNCH
        elif name == "eval":
            out += str(eval(args[0], {"__builtins__": {}}, {}))
        else:
            raise AssertionError(f"unsupported substitution $({name})")
    return out


def split_cmdline(cmd, values):
    """launch's ExecuteProcess._parse_cmdline semantics: literal text splits at whitespace, a
    substitution's value stays one argument (even when empty), text glued to it joins it."""
    parts, _ = parse_subst(cmd)
    argv, cur, have = [], "", False
    for p in parts:
        if isinstance(p, str):
            tokens = p.split()
            if not tokens:
                if have:
                    argv.append(cur)
                cur, have = "", False
                continue
            if p[0].isspace() and have:
                argv.append(cur)
                cur, have = "", False
            cur += tokens[0]
            have = True
            for t in tokens[1:]:
                argv.append(cur)
                cur, have = t, True
            if p[-1].isspace():
                argv.append(cur)
                cur, have = "", False
        else:
            cur += evaluate([p], values)
            have = True
    if have:
        argv.append(cur)
    return argv


def condition(attr, values):
    v = evaluate(parse_subst(attr)[0], values).strip().lower()
    assert v in ("true", "false", "1", "0"), f"condition {attr!r} -> {v!r}"
    return v in ("true", "1")


def check_xml(env_names, perch):
    path = os.path.join(LAUNCH, "perch.launch.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "launch", f"{path}: root element is <{root.tag}>, expected <launch>"
    for child in root:
        assert child.tag in {"arg", "executable"}, f"{path}: unexpected element <{child.tag}>"
    args = {a.get("name"): a.get("default") for a in root.findall("arg")}
    assert ARGS <= set(args), f"{path}: missing arguments {sorted(ARGS - set(args))}"
    text = ET.tostring(root, encoding="unicode")
    used = set(re.findall(r"\$\(var (\w+)\)", text))
    assert used <= set(args), f"{path}: uses undeclared arguments {sorted(used - set(args))}"
    cfg = args["config"].replace("$(dirname)", LAUNCH)
    assert os.path.isfile(cfg), f"{path}: default config {args['config']} -> {cfg} does not exist"
    exes = root.findall("executable")
    runs = 0
    with tempfile.TemporaryDirectory() as elsewhere:
        cwd = os.getcwd()
        os.chdir(elsewhere)
        try:
            for case, overrides, expect in cases(elsewhere):
                values = {k: evaluate(parse_subst(v or "")[0], {}) for k, v in args.items()}
                values.update(overrides)
                active = [e for e in exes if (e.get("if") is None or condition(e.get("if"), values))
                          and (e.get("unless") is None or not condition(e.get("unless"), values))]
                assert len(active) == 1, f"{path} [{case}]: {len(active)} executables start, expected 1"
                exe = active[0]
                argv = split_cmdline(exe.get("cmd"), values)
                env = {e.get("name"): evaluate(parse_subst(e.get("value"))[0], values) for e in exe.findall("env")}
                check_argv(path, case, argv, expect, env, env_names, {"config": cfg}, overrides)
                runs += try_perch(perch, argv, f"perch.launch.xml [{case}]")
        finally:
            os.chdir(cwd)
    return f"{len(args)} arguments, {len(exes)} executables, {runs} argument sets accepted by perch"


# ---- perch itself -------------------------------------------------------------------------------

def try_perch(perch, argv, what):
    """Hand the command line to a real perch (with --help appended: parsed, not run). Returns 1 if
    it ran, 0 when skipped (no binary, or a flag this perch predates)."""
    if not perch:
        return 0
    if "--source" in argv:
        help_text = subprocess.run([perch, "run", "--help"], capture_output=True, text=True).stdout
        if "--source" not in help_text:
            print(f"  note: {what}: this perch has no --source flag yet; not run")
            return 0
    r = subprocess.run([perch] + argv[1:] + ["--help"], capture_output=True, text=True)
    assert r.returncode == 0, f"{what}: perch refused {argv[1:]}: {r.stderr.strip()}"
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perch", default=os.environ.get("PERCH_BIN"), help="perch binary to hand the commands to")
    a = ap.parse_args()
    perch = os.path.abspath(a.perch) if a.perch and os.path.exists(a.perch) else None
    env_names = rust_env_names()
    passed = failed = 0
    for name, check in (("perch.launch.py", check_python), ("perch.launch.xml", check_xml),
                        ("perch_node.launch.py", check_node_launch)):
        try:
            detail = check(env_names, perch)
            print(f"PASS {name}: {detail}")
            passed += 1
        except (AssertionError, SyntaxError, ET.ParseError, OSError, KeyError) as e:
            print(f"FAIL {name}: {e}")
            failed += 1
    print(f"launch: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
