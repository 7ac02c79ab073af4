"""The pickle knowledge files: every dangerous callable they name exists and is caught, and
what real libraries pickle for benign models and plain values is allowed.

Dangerous names are checked against the real modules (imported here; a library that is not
installed is skipped), so a misspelt pattern cannot pass for coverage. Benign files are built
with the real libraries and their imports read with pickletools.genops (joblib files, whose
raw array bytes genops cannot step over, with provscan's own walk).
"""

from __future__ import annotations
import __future__

import _compat_pickle
import argparse
import collections
import datetime
import decimal
import fractions
import importlib
import importlib.util
import io
import pathlib
import pickle
import pickletools
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from provscan.collectors.serialization.pickle.globals import (
    GlobalVerdict,
    allowed_globals,
    classify_global,
)
from provscan.collectors.serialization.pickle.scan import walk_pickles
from tests.conftest import REPO

KNOWLEDGE = REPO / "provscan" / "knowledge"

# Modules that exist only in some CPython releases: (first release with it, first without).
_STDLIB_SPAN: dict[str, tuple[tuple[int, int], tuple[int, int] | None]] = {
    "imp": ((3, 0), (3, 12)),
    "_xxsubinterpreters": ((3, 8), (3, 13)),
    "_interpreters": ((3, 13), None),
    "concurrent.interpreters": ((3, 14), None),
}
# Libraries outside the standard library that names below come from: skipped when absent.
# Any other name that does not resolve is a typo, and fails.
_LIBRARIES = frozenset(
    {
        "aiohttp",
        "cffi",
        "cloudpickle",
        "dill",
        "httpx",
        "joblib",
        "jsonpickle",
        "numexpr",
        "numpy",
        "pandas",
        "requests",
        "sklearn",
        "sympy",
        "torch",
        "yaml",
    }
)

# Callables that run code, processes, files or the network when a pickle calls (or rebuilds)
# them; each must exist where it is named and be classified dangerous.
DANGEROUS = (
    # exec / eval / compile, in any namespace
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "torch.fx.graph_module._forward_from_src",
    "torch.fx.graph_module._exec_with_source",
    "torch.fx.graph_module._method_from_src",
    "torch.fx.graph_module.reduce_graph_module",
    "torch.fx.graph_module.reduce_package_graph_module",
    "torch.fx.graph_module._deserialize_graph_module",
    "torch.fx.GraphModule",
    "torch.fx.GraphModule.recompile",
    "torch.fx.Interpreter",
    "torch.jit.load",
    "torch.jit.script",
    "torch.jit.trace",
    "torch.jit._script.script",
    "torch.jit._script.RecursiveScriptModule",
    "torch.jit._serialization.load",
    "torch.jit.unsupported_tensor_ops.execWrapper",
    "torch.jit.frontend.get_jit_def",
    "torch._jit_internal.createResolutionCallbackFromEnv",
    "torch._C._jit_script_compile",
    "torch._C.import_ir_module",
    "torch._C._load_for_lite_interpreter",
    "torch.compile",
    "torch._dynamo.guards.GuardBuilder.get",
    "torch._dynamo.optimize",
    "torch._inductor.codecache.PyCodeCache.load",
    "torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression",
    "torch.utils._config_module.ConfigModule.load_config",
    "torch.utils.collect_env.run",
    "torch.utils.cpp_extension.load_inline",
    "numpy.testing._private.utils.runstring",
    "numpy.testing._private.extbuild.build_and_import_extension",
    "numpy.f2py.run_main",
    "code.InteractiveInterpreter",
    "code.InteractiveInterpreter.runcode",
    "code.InteractiveInterpreter.runsource",
    "code.InteractiveConsole",
    "code.interact",
    "codeop.compile_command",
    "codeop.CommandCompiler",
    "runpy.run_path",
    "runpy.run_module",
    "runpy._run_code",
    "timeit.timeit",
    "timeit.repeat",
    "timeit.Timer",
    "timeit.Timer.timeit",
    "pdb.run",
    "pdb.runeval",
    "pdb.Pdb.run",
    "cProfile.run",
    "cProfile.runctx",
    "profile.run",
    "trace.Trace.run",
    "trace.Trace.runctx",
    "doctest.debug_script",
    "doctest.debug_src",
    "doctest.testmod",
    "unittest.main",
    "idlelib.run.Executive.runcode",
    "idlelib.autocomplete.AutoComplete.get_entity",
    "pydoc.locate",
    "pydoc.pipepager",
    "rlcompleter.Completer.attr_matches",
    "dataclasses._create_fn",
    "typing.get_type_hints",
    "typing.ForwardRef._evaluate",
    "tkinter.Tcl",
    "sympy.sympify",
    "sympy.S",
    "sympy.lambdify",
    "sympy.parsing.sympy_parser.parse_expr",
    "numexpr.evaluate",
    "pandas.eval",
    # attribute climbing and call wrappers
    "operator.attrgetter",
    "operator.methodcaller",
    "_operator.attrgetter",
    "_operator.methodcaller",
    "functools.partial",
    "functools.partialmethod",
    "functools.reduce",
    "functools.update_wrapper",
    "builtins.getattr",
    "builtins.setattr",
    # imports
    "importlib.import_module",
    "importlib.util.spec_from_file_location",
    "importlib.machinery.SourceFileLoader",
    "pkgutil.resolve_name",
    "builtins.__import__",
    "imp.load_source",
    "_imp.create_dynamic",
    "zipimport.zipimporter",
    "site.addsitedir",
    "torch._utils._import_dotted_name",
    # sub-interpreters, threads, processes
    "_xxsubinterpreters.run_string",
    "_interpreters.run_string",
    "concurrent.interpreters.create",
    "concurrent.futures.ProcessPoolExecutor",
    "threading.Thread",
    "_thread.start_new_thread",
    "atexit.register",
    "subprocess.Popen",
    "os.system",
    "pty.spawn",
    "torch.multiprocessing.spawn",
    "uuid._get_command_stdout",
    "uuid.getnode",
    "uuid.uuid1",
    "platform._syscmd_file",
    "platform.architecture",
    "asyncio.create_subprocess_shell",
    "asyncio.create_subprocess_exec",
    "asyncio.subprocess.create_subprocess_exec",
    "asyncio.unix_events._UnixSubprocessTransport._start",
    "asyncio.base_events.BaseEventLoop.subprocess_shell",
    # file-system writers (and readers)
    "pathlib.Path.write_text",
    "pathlib.Path.write_bytes",
    "pathlib.Path.touch",
    "pathlib.Path.unlink",
    "pathlib.Path.rename",
    "pathlib.Path.replace",
    "pathlib.Path.mkdir",
    "pathlib.Path.rmdir",
    "pathlib.Path.open",
    "pathlib.Path.symlink_to",
    "pathlib.Path.read_text",
    "pathlib.Path.read_bytes",
    "pathlib.PosixPath.write_text",
    "pathlib.PosixPath.unlink",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
    "io.open",
    "io.open_code",
    "io.FileIO",
    "_io.FileIO",
    "builtins.open",
    "codecs.open",
    "gzip.open",
    "tempfile.mkstemp",
    "tempfile.NamedTemporaryFile",
    "zipfile.ZipFile.extractall",
    "tarfile.TarFile.extractall",
    "tarfile.open",
    "fileinput.input",
    "mmap.mmap",
    "sqlite3.connect",
    "numpy.save",
    "numpy.savez",
    "numpy.memmap",
    "numpy.ndarray.tofile",
    "torch.save",
    "torch.from_file",
    "torch.UntypedStorage.from_file",
    "logging.FileHandler",
    "logging.basicConfig",
    "logging.handlers.SocketHandler",
    "logging.config.listen",
    "logging.config.fileConfig",
    "logging.config.dictConfig",
    # network clients and servers
    "socket.socket",
    "socket.create_connection",
    "ssl.get_server_certificate",
    "urllib.request.urlopen",
    "urllib.request.urlretrieve",
    "http.client.HTTPConnection",
    "http.server.HTTPServer",
    "ftplib.FTP",
    "smtplib.SMTP",
    "imaplib.IMAP4_stream",
    "xmlrpc.client.ServerProxy",
    "socketserver.TCPServer",
    "requests.get",
    "requests.api.request",
    "httpx.get",
    "aiohttp.ClientSession",
    "webbrowser.open",
    "torch.hub.load",
    "torch.utils.model_zoo.load_url",
    # native code
    "ctypes.CDLL",
    "ctypes.cdll",
    "_ctypes.dlopen",
    "cffi.FFI",
    "numpy.ctypeslib.load_library",
    # nested loaders
    "marshal.loads",
    "pickle.loads",
    "pickle.Unpickler",
    "_pickle.loads",
    "dill.loads",
    "cloudpickle.loads",
    "joblib.load",
    "numpy.load",
    "torch.load",
    "torch.serialization.load",
    "torch.storage._load_from_bytes",
    "torch.package.PackageImporter",
    "torch.serialization.add_safe_globals",
    "shelve.open",
    "copyreg.add_extension",
    "yaml.load",
    "yaml.unsafe_load",
    "jsonpickle.decode",
    "pandas.read_pickle",
    # interpreter internals
    "sys.modules",
    "types.CodeType",
    "types.FunctionType",
)


def _module_exists_here(module: str) -> str | None:
    """Why `module` cannot be checked on this interpreter, or None when it can."""
    for prefix, (first, gone) in _STDLIB_SPAN.items():
        if module == prefix or module.startswith(prefix + "."):
            if sys.version_info[:2] < first:
                return f"{prefix} is new in Python {first[0]}.{first[1]}"
            if gone is not None and sys.version_info[:2] >= gone:
                return f"{prefix} was removed in Python {gone[0]}.{gone[1]}"
            return None
    top = module.split(".")[0]
    if top in _LIBRARIES and importlib.util.find_spec(top) is None:
        return f"{top} is not installed"
    return None


def _resolve(qualified: str) -> object:
    """Import the longest importable module prefix of `qualified`, then walk the attributes."""
    parts = qualified.split(".")
    reason = _module_exists_here(".".join(parts[:-1]))
    if reason is not None:
        pytest.skip(reason)
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            assert hasattr(obj, attribute), f"{qualified}: {attribute!r} does not exist"
            obj = getattr(obj, attribute)
        return obj
    raise AssertionError(f"{qualified}: no importable module")


@pytest.mark.parametrize("qualified", DANGEROUS)
def test_dangerous_callable_exists_and_is_dangerous(qualified: str) -> None:
    verdict, why = classify_global(qualified)
    assert verdict is GlobalVerdict.DANGEROUS and why, f"{qualified} is {verdict.value}"
    _resolve(qualified)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        # Reached through other modules or classes, as protocol 4 resolves dotted names.
        ("torch.serialization", "os.system"),
        ("mylib.helpers", "Path.write_text"),
        ("zipfile", "Path.write_text"),
        ("numpy", "load.__call__"),
        ("mylib", "pathlib.Path.unlink"),
        # Importing a package's command-line entry point runs it.
        ("idlelib.__main__", "x"),
        ("torch.utils.bottleneck.__main__", "run_cprofile"),
    ],
)
def test_dangerous_spellings_without_importing(module: str, name: str) -> None:
    verdict, _ = classify_global(f"{module}.{name}", name=name)
    assert verdict is GlobalVerdict.DANGEROUS


# ---- benign files and values --------------------------------------------------------------


def _genops_imports(data: bytes) -> set[tuple[str, str]]:
    """(module, name) of every GLOBAL, INST and STACK_GLOBAL, as the unpickler resolves them."""
    found: set[tuple[str, str]] = set()
    memo: dict[Any, Any] = {}
    pushed: list[Any] = []  # strings pushed (None for anything else), for STACK_GLOBAL
    last: Any = None
    proto = 0
    for op, arg, _pos in pickletools.genops(data):
        if op.name == "PROTO":
            proto = arg
        elif op.name in ("GLOBAL", "INST"):
            module, name = arg.split(" ", 1)
            found.add(_renamed(module, name, proto))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            last = arg
            pushed.append(arg)
            continue
        elif op.name == "MEMOIZE":
            memo[len(memo)] = last
            continue
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = last
            continue
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            last = memo.get(arg)
            pushed.append(last)
            continue
        elif op.name == "STACK_GLOBAL":
            module, name = pushed[-2], pushed[-1]
            assert isinstance(module, str) and isinstance(name, str), "untracked operands"
            found.add((module, name))
        last = None
        pushed.append(None)
    return found


def _renamed(module: str, name: str, proto: int) -> tuple[str, str]:
    """pickle.Unpickler.find_class's renames for protocols 0-2 (fix_imports)."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return module, name


def _assert_allowed(imports: set[tuple[str, str]], what: str) -> None:
    assert imports, f"{what}: no imports found, the walk is broken"
    judged = {f"{m}.{n}": classify_global(f"{m}.{n}", name=n)[0] for m, n in imports}
    bad = {q: v.value for q, v in judged.items() if v is not GlobalVerdict.ALLOWED}
    assert not bad, f"{what} imports globals that are not allowed: {bad}"


def _estimators() -> dict[str, Any]:
    pytest.importorskip("sklearn")
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.5], [4.0, 1.0], [5.0, 0.0]])
    y = [0, 0, 1, 1, 0, 1]
    return {
        "pipeline_scaler_logreg": Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression())]
        ).fit(x, y),
        "random_forest_2_trees": RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=2, random_state=0).fit(x, y),
        "pca": PCA(n_components=1).fit(x),
        "svc": SVC().fit(x, y),
        "kmeans": KMeans(n_clusters=2, n_init=1, random_state=0).fit(x),
        "ridge": Ridge().fit(x, y),
        "imputer": SimpleImputer().fit(x),
        "one_hot": OneHotEncoder().fit([["a"], ["b"]]),
        "column_transformer": ColumnTransformer([("mm", MinMaxScaler(), [0])]).fit(x),
        "tfidf": TfidfVectorizer().fit(["apple banana", "banana cherry"]),
    }


@pytest.fixture(scope="module")
def estimators() -> dict[str, Any]:
    return _estimators()


@pytest.mark.parametrize("name", ["pipeline_scaler_logreg", "random_forest_2_trees"])
def test_joblib_dump_of_sklearn_models_imports_only_allowed_globals(
    estimators: dict[str, Any], name: str, tmp_path: Path
) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / f"{name}.joblib"
    joblib.dump(estimators[name], path)
    with path.open("rb") as stream:
        walk = walk_pickles(stream, limit=path.stat().st_size, max_opcodes=10_000_000)
    assert walk.error is None, walk.error
    _assert_allowed({(i.module, i.name) for i in walk.imports.values()}, f"joblib.dump({name})")


def test_sklearn_estimators_pickled_with_every_protocol_import_only_allowed_globals(
    estimators: dict[str, Any],
) -> None:
    for name, estimator in estimators.items():
        for protocol in (2, 4, 5):
            data = pickle.dumps(estimator, protocol=protocol)
            _assert_allowed(_genops_imports(data), f"pickle.dumps({name}, protocol={protocol})")


def test_torch_save_of_a_module_state_dict_imports_only_allowed_globals(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(), torch.nn.Linear(3, 2)
    )
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    with zipfile.ZipFile(path) as archive:
        [member] = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        data = archive.read(member)
    imports = _genops_imports(data)
    assert ("collections", "OrderedDict") in imports
    _assert_allowed(imports, "torch.save(state_dict)")


HARMLESS_VALUES: dict[str, Any] = {
    "pure_posix_path": pathlib.PurePosixPath("/models/a.bin"),
    "pure_windows_path": pathlib.PureWindowsPath("C:/models/a.bin"),
    "posix_path": pathlib.PosixPath("/models/a.bin"),
    "path": pathlib.Path("relative/a.bin"),
    "uuid": uuid.UUID(int=0x1234),
    "safe_uuid": uuid.SafeUUID.safe,
    "argparse_namespace": argparse.Namespace(lr=0.1, epochs=3, out=pathlib.Path("out")),
    "ordered_dict": collections.OrderedDict(a=1),
    "builtins": [len, {1}, slice(1, 5, 2), frozenset({2}), 3 + 4j, range(3), bytearray(b"x")],
    "future_features": [getattr(__future__, f) for f in __future__.all_feature_names],
    "datetime": [
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        datetime.date(2024, 1, 2),
        datetime.time(3, 4, 5),
        datetime.timedelta(days=1, seconds=2),
        datetime.timezone(datetime.timedelta(hours=2), "CEST"),
    ],
    "decimal": decimal.Decimal("1.25"),
    "fraction": fractions.Fraction(1, 3),
    "numpy_scalars": [
        np.float16(1),
        np.float32(1),
        np.float64(1),
        np.int8(1),
        np.int64(1),
        np.uint32(1),
        np.bool_(True),
        np.complex64(1j),
        np.str_("a"),
        np.bytes_(b"a"),
        np.datetime64("2024-01-01"),
        np.timedelta64(1, "s"),
    ],
    "numpy_dtypes": [np.dtype("f4"), np.dtype([("a", "<i4")]), np.dtype("M8[s]"), np.float32],
    "numpy_scalar_types": [np.float64, np.int64, np.uint8, np.bool_, np.complex128, np.str_],
    "numpy_random_state": np.random.RandomState(0),
    "numpy_generator": np.random.default_rng(0),
}


@pytest.mark.parametrize("name", sorted(HARMLESS_VALUES))
def test_harmless_values_import_only_allowed_globals(name: str) -> None:
    for protocol in range(6):
        data = pickle.dumps(HARMLESS_VALUES[name], protocol=protocol)
        _assert_allowed(_genops_imports(data), f"pickle.dumps({name}, protocol={protocol})")


@pytest.mark.parametrize(
    "qualified",
    [
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "uuid.UUID",
        "uuid.SafeUUID",
        "argparse.Namespace",
        "collections.OrderedDict",
        "builtins.len",
        "builtins.set",
        "builtins.slice",
        "builtins.frozenset",
        "builtins.complex",
        "__future__._Feature",
        "datetime.datetime",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "numpy.float32",
        "numpy.dtype",
        "numpy._core.multiarray.scalar",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.pipeline.Pipeline",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    ],
)
def test_harmless_classes_are_allowed(qualified: str) -> None:
    name = qualified.rsplit(".", 1)[1]
    assert classify_global(qualified, name=name)[0] is GlobalVerdict.ALLOWED
    _resolve(qualified)


def test_every_allowlisted_global_exists_where_installed() -> None:
    """A typo in the allowlist would allow nothing and hide nothing, but it is still wrong."""
    missing = []
    for qualified in sorted(allowed_globals()):
        parts = qualified.split(".")
        if _module_exists_here(".".join(parts[:-1])) is not None:
            continue
        if parts[0] == "torch" and parts[1] == "cuda":
            continue  # CUDA storage classes are lazily created stubs on CPU builds
        try:
            _resolve(qualified)
        except AssertionError as exc:
            missing.append(str(exc))
    assert not missing, missing


def test_every_knowledge_group_cites_a_public_url_and_says_why() -> None:
    for name, key in (("pickle_allowlist.yaml", "globals"), ("pickle_dangerous.yaml", "patterns")):
        document = yaml.safe_load((KNOWLEDGE / name).read_text(encoding="utf-8"))
        for entry in document["entries"]:
            assert "https://" in entry["source"], entry[key]
            assert len(entry["why"].split()) >= 4, entry[key]


def test_walk_helper_sees_stack_global_through_the_memo() -> None:
    """The genops helper must not under-report (it decides what the tests above check)."""
    data = pickle.dumps([pathlib.PurePosixPath("a"), pathlib.PurePosixPath("b")], protocol=4)
    assert _genops_imports(data) == {("pathlib", "PurePosixPath")}
    payload = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93."
    assert _genops_imports(payload) == {("os", "system")}
    assert _genops_imports(io.BytesIO(b"cos\nsystem\n.").getvalue()) == {("os", "system")}
    assert _genops_imports(b"\x80\x02c__builtin__\nlen\n.") == {("builtins", "len")}
