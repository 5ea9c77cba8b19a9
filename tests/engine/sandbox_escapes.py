"""Escape and bomb scripts for the sandbox tests: each is what an attacker with designer rights
would put into a script task, with the words the incident must say.

Scripts that would get hold of something real go on to use it: write a file (`CANARY`), read
the engine's environment, keep what they found in the task data. None of that may happen.
"""

from dataclasses import dataclass

CANARY = "/tmp/baton-sandbox-escaped"  # noqa: S108 - a path that must never appear
# What a script that got the real `os`/`builtins` does with them (never reached).
USE_IT = (
    f"\nb.open({CANARY!r}, 'w').write('escaped')"
    "\nleaked = b.open('/proc/%d/environ' % o.getppid()).read()"
)


@dataclass(frozen=True)
class Escape:
    id: str
    script: str
    says: str  # part of the incident's message


NOT_AVAILABLE = "is not available in diagram scripts"
NOT_ALLOWED = "is not allowed in diagram scripts"
TEXT_LIMIT = "diagram scripts may build at most 10,000,000"
NUMBER_LIMIT = "numbers of at most 100,000 bits"
FIELD_LIMIT = "a formatted field of"
BEYOND = "The script left data beyond the limits"


def _from_import(module: str, name: str) -> Escape:
    return Escape(
        f"from_{module}_import_{name}",
        f"from {module} import {name}\ns = {name}.sys\nb = s.modules['builtins']\n"
        f"o = s.modules['os']{USE_IT}",
        f"{module}.{name} {NOT_AVAILABLE}",
    )


def _dotted_import(module: str, name: str) -> Escape:
    return Escape(
        f"import_{module}_{name}",
        f"import {module}.{name}",
        f"Importing '{module}.{name}' {NOT_ALLOWED}",
    )


# Every submodule, and every module-level import, of every module scripts may import.
SUBMODULES = {
    "json": ("decoder", "encoder", "scanner", "tool", "codecs", "re"),
    "decimal": ("getcontext", "localcontext", "setcontext", "sys", "numbers", "Context"),
    "datetime": ("sys", "time_module", "math"),
    "math": ("sys",),
    "random": ("os", "bisect", "Random", "SystemRandom", "itertools", "math"),
    "statistics": (
        "sys",
        "math",
        "random",
        "fractions",
        "numbers",
        "collections",
        "decimal",
        "itertools",
        "bisect",
        "operator",
    ),
    "string": ("Formatter", "re", "ChainMap"),
    # SpiffArena's `time` and `uuid` (issue 19): only their clock and id functions.
    "time": ("clock_settime", "tzset", "struct_time", "process_time", "pthread_getcpuclockid"),
    "uuid": ("os", "sys", "platform", "getnode", "uuid1", "SafeUUID", "Enum"),
}

IMPORTS = [
    *(_from_import(module, name) for module, names in SUBMODULES.items() for name in names),
    _dotted_import("json", "decoder"),
    _dotted_import("json", "encoder"),
    _dotted_import("decimal", "sys"),
    _dotted_import("string", "re"),
    _dotted_import("statistics", "sys"),
    Escape(
        "the_issue_s_exploit",
        "from json import decoder\ns = decoder.re.enum.sys\nb = s.modules['builtins']\n"
        "o = s.modules['os']" + USE_IT,
        f"json.decoder {NOT_AVAILABLE}",
    ),
    Escape("import_os", "import os", f"Importing 'os' {NOT_ALLOWED}"),
    Escape("import_sys", "import sys", f"Importing 'sys' {NOT_ALLOWED}"),
    Escape("import_subprocess", "import subprocess", f"Importing 'subprocess' {NOT_ALLOWED}"),
    Escape("import_socket", "import socket", f"Importing 'socket' {NOT_ALLOWED}"),
    Escape("import_importlib", "import importlib", f"Importing 'importlib' {NOT_ALLOWED}"),
    Escape("import_builtins", "import builtins", '"builtins" is a reserved name'),
    Escape("relative_import", "from . import sandbox", "is not allowed in diagram scripts"),
    Escape("dunder_import", "__import__('os')", 'starts with "_"'),
]

WALKS = [
    Escape(
        "string_formatter_get_field",
        "import string\nf = string.Formatter().get_field('0.__globals__', [len], {})",
        "has no attribute 'Formatter'",
    ),
    Escape(
        "format_class_mro",
        "x = '{0.__class__.__mro__}'.format(1)",
        "attribute '__class__' is not allowed",
    ),
    Escape(
        "format_function_globals",
        "def f():\n    pass\nx = '{0.__globals__}'.format(f)",
        "attribute '__globals__' is not allowed",
    ),
    Escape(
        "format_map_walk",
        "x = str.format_map('{x.__class__}', {'x': 1})",
        "attribute '__class__' is not allowed",
    ),
    Escape("format_item_walk", "x = '{0[__builtins__]}'.format({})", "KeyError"),
    Escape("format_spec_walk", "x = '{:{}}'.format(1, '>99999999')", FIELD_LIMIT),
    Escape(
        "generator_gi_frame",
        "g = (i for i in [1])\nf = g.gi_frame",
        '"gi_frame" is a restricted name',
    ),
    Escape(
        "generator_gi_frame_getattr",
        "g = (i for i in [1])\nf = getattr(g, 'gi_frame')",
        "attribute 'gi_frame' is not allowed",
    ),
    Escape(
        "generator_gi_code_getattr",
        "g = (i for i in [1])\nf = getattr(g, 'gi_code')",
        "attribute 'gi_code' is not allowed",
    ),
    Escape(
        "generator_methods",
        "g = (i for i in [1])\nf = getattr(g, 'throw')",
        "of a generator is not allowed",
    ),
    Escape(
        "coroutine_cr_frame",
        "async def c():\n    pass\nx = getattr(c(), 'cr_frame')",
        "AsyncFunctionDef statements are not allowed",
    ),
    Escape(
        "async_generator_ag_frame",
        "async def a():\n    yield 1\nx = a().ag_frame",
        "AsyncFunctionDef statements are not allowed",
    ),
    Escape(
        "exception_traceback",
        "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__",
        '"__traceback__" is an invalid attribute name',
    ),
    Escape(
        "exception_traceback_getattr",
        "try:\n    1 / 0\nexcept Exception as e:\n    t = getattr(e, '__traceback__')",
        "attribute '__traceback__' is not allowed",
    ),
    Escape(
        "exception_tb_frame",
        "try:\n    1 / 0\nexcept Exception as e:\n    t = getattr(e, 'tb_frame')",
        "attribute 'tb_frame' is not allowed",
    ),
    Escape("builtins_by_name", "b = __builtins__['open']", 'starts with "_"'),
    Escape(
        "builtins_through_globals", "b = globals()['__builtins__']", f"globals() {NOT_AVAILABLE}"
    ),
    Escape(
        "decorator",
        "def deco(f):\n    return getattr(f, '__globals__')\n@deco\ndef g():\n    pass",
        "attribute '__globals__' is not allowed",
    ),
    Escape(
        "class_body",
        "class A:\n    x = getattr(1, '__class__')",
        "Class definitions are not allowed",
    ),
    Escape(
        "lambda_default",
        "f = lambda x=getattr(len, '__self__'): x",
        "attribute '__self__' is not allowed",
    ),
    Escape("vars", "x = vars()", f"vars() {NOT_AVAILABLE}"),
    Escape("dir", "x = dir()", f"dir() {NOT_AVAILABLE}"),
    # locals() is SpiffArena's: the script's own variables only (SPIFF_HELPERS below).
    Escape("locals_function", "f = locals\nx = f()['get_env']", "KeyError"),
    Escape("type", "x = type(1)", f"type() {NOT_AVAILABLE}"),
    Escape("object_subclasses", "x = object.__subclasses__()", 'starts with "_"'),
    Escape(
        "function_globals",
        "import json\nx = getattr(json.loads, '__globals__')",
        "attribute '__globals__' is not allowed",
    ),
    Escape(
        "bound_method_owner",
        "x = getattr([].append, '__self__')",
        "attribute '__self__' is not allowed",
    ),
    Escape("type_mro", "x = int.mro()", "attribute 'mro' is not allowed"),
    Escape("setattr", "import math\nsetattr(math, 'pi', 3)", f"setattr() {NOT_AVAILABLE}"),
    Escape("change_a_module", "import math\nmath.pi = 3", "cannot change <module 'math'>"),
    Escape(
        "change_a_module_function", "import json\njson.loads = len", "cannot change <module 'json'>"
    ),
    Escape(
        "change_a_class", "import json\njson.JSONDecodeError.msg = 'x'", "cannot change a class"
    ),
    # Full-width letters, which Python folds into ASCII (NFKC) in names.
    Escape("lookalike_exec", "\uff45\uff58\uff45\uff43('x = 1')", "Exec calls are not allowed"),
    Escape("lookalike_import", "import \uff4f\uff53", "Importing 'os'"),
    Escape(
        "lookalike_attribute", "x = getattr(1, '\uff3f\uff3fclass\uff3f\uff3f')", "has no attribute"
    ),
    Escape("getattr_dunder", "x = getattr(1, '__class__')", "attribute '__class__' is not allowed"),
    Escape("hasattr_dunder", "x = hasattr(1, '__class__')", "attribute '__class__' is not allowed"),
    Escape("iter_sentinel", "x = list(iter(int, 1))", "iter(callable, sentinel)"),
    Escape("compile", "x = compile('1', 'x', 'eval')", f"compile() {NOT_AVAILABLE}"),
    Escape("eval", "x = eval('1')", "Eval calls are not allowed"),
    Escape("exec", "exec('x = 1')", "Exec calls are not allowed"),
    Escape("open", "x = open('/proc/self/environ').read()", f"open() {NOT_AVAILABLE}"),
    Escape("breakpoint", "breakpoint()", '"breakpoint" is a reserved name'),
    Escape("memoryview", "x = memoryview(b'x')", f"memoryview() {NOT_AVAILABLE}"),
    Escape("id", "x = id(1)", f"id() {NOT_AVAILABLE}"),
]

BOMBS = [
    Escape(
        "int_from_bytes_hex", "x = hex(int.from_bytes(b'\\xff' * 9_000_000, 'big'))", NUMBER_LIMIT
    ),
    Escape("bytes_of_a_count", "x = bytes(10**9)", TEXT_LIMIT),
    Escape("bytearray", "x = bytearray(10**9)", f"bytearray() {NOT_AVAILABLE}"),
    Escape("bytes_times", "x = b'x' * 10**9", TEXT_LIMIT),
    Escape("bytes_ljust", "x = b'x'.ljust(10**9)", TEXT_LIMIT),
    Escape("bytes_hex", "x = (b'x' * 9_000_000).hex()", TEXT_LIMIT),
    Escape("bytes_join", "x = b','.join([b'x' * 1000] * 20000)", TEXT_LIMIT),
    Escape("str_center", "x = 'x'.center(10**9)", TEXT_LIMIT),
    Escape("str_replace", "x = ('a' * 1000).replace('a', 'b' * 100000)", TEXT_LIMIT),
    Escape("str_join", "x = ','.join(['x' * 1000] * 100000)", TEXT_LIMIT),
    Escape("unbound_str_ljust", "x = str.ljust('x', 10**9)", TEXT_LIMIT),
    Escape("str_translate", "x = ('a' * 1000).translate({97: 'b' * 100000})", TEXT_LIMIT),
    Escape("str_expandtabs", "x = ('\\t' * 1000).expandtabs(100000)", TEXT_LIMIT),
    Escape("percent_width", "x = '%0999999999d' % 1", FIELD_LIMIT),
    Escape("percent_concatenation", "a = 'x' * 9_000_000\nx = '%s%s' % (a, a)", BEYOND),
    Escape("fstring_width", "x = f'{1:>999999999}'", FIELD_LIMIT),
    Escape("format_width", "x = format(1, '>99999999')", FIELD_LIMIT),
    Escape("json_dumps", "import json\nx = json.dumps(['x' * 1000] * 20000)", TEXT_LIMIT),
    Escape("int_to_bytes", "x = (10).to_bytes(10**9, 'big')", TEXT_LIMIT),
    Escape("int_from_hex_digits", "x = int('f' * 9_000_000, 16)", NUMBER_LIMIT),
    Escape("power", "x = 10**10**10", NUMBER_LIMIT),
    Escape("left_shift", "x = 1 << 10**9", NUMBER_LIMIT),
    Escape("math_factorial", "import math\nx = math.factorial(10**7)", NUMBER_LIMIT),
    Escape("math_comb", "import math\nx = math.comb(10**6, 5 * 10**5)", NUMBER_LIMIT),
    Escape("list_times", "x = [0] * 10**9", "at most 1,000,000"),
    Escape(
        "huge_comprehension", "x = [i for i in range(10**6) for j in range(10**6)]", "time limit"
    ),
    Escape("nesting", "x = []\nfor i in range(10000):\n    x = [x]", "nested more than 100 levels"),
    Escape("recursion", "def f():\n    return f()\nf()", "maximum recursion depth"),
    Escape("decimal_to_int", "x = int(Decimal('1e99999999'))", "more than 10,000 digits"),
    Escape("decimal_format", "x = '{:f}'.format(Decimal('1e99999999'))", "more than 10,000 digits"),
    Escape("decimal_percent", "x = '%d' % Decimal('1e999999')", "more than 10,000 digits"),
    Escape("decimal_power", "x = Decimal(10) ** 100000", "a decimal beyond 1E+10000"),
    Escape("concatenation", "a = 'x' * 9_000_000\nx = a + a", TEXT_LIMIT),
    Escape(
        "set_left_behind",
        "x = set(range(10**6)) | set(range(-10**6, 0))",
        "a set of 2,000,000 items",
    ),
    Escape("aliased_total", "x = ['y' * 9_000_000] * 6", BEYOND),
    Escape("random_bytes", "import random\nx = random.randbytes(10**9)", TEXT_LIMIT),
    Escape(
        "normal_samples",
        "import statistics\nx = statistics.NormalDist().samples(10**9)",
        "at most 1,000,000",
    ),
    Escape("memory", "x = [bytes(9_999_999) for i in range(100)]", "ran out of memory"),
    Escape(
        "catching_the_time_limit",
        "n = 0\ntry:\n    while True:\n        n += 1\nexcept:\n    pass",
        "time limit",
    ),
    Escape("decimal_format_spec_order", "x = format(Decimal(1), '<z 9000000')", FIELD_LIMIT),
    Escape("map_of_int", "x = list(map(int, ['f' * 2_000_000], [16]))", NUMBER_LIMIT),
    Escape(
        "exponential_comparison",
        "a = [1]\nb = [1]\nfor i in range(40):\n    a, b = [a, b], [b, a]\nsame = a == b",
        "time limit",
    ),
    Escape(
        "shared_sublists_left_behind", "a = 'x' * 100\nfor i in range(30):\n    a = [a, a]", BEYOND
    ),
    Escape("number_too_long_to_store", "x = 10 ** 5000", "at most 4,300"),
    Escape("infinity", "x = float('inf')", "which the process data cannot keep"),
    Escape("tuple_dict_key", "x = {(1, 2): 3}", "a dict key other than"),
]

# Plain scripts (evaluated in the engine when they are plain enough) that must not be.
PLAIN = [
    Escape(
        "plain_exponential_comparison",
        "a0 = [1]\nb0 = [1]\n"
        + "".join(
            f"a{i} = [a{i - 1}, b{i - 1}]\nb{i} = [b{i - 1}, a{i - 1}]\n" for i in range(1, 41)
        )
        + "same = a40 == b40",
        "time limit",
    ),
    Escape(
        "plain_shared_sublists",
        "a0 = 'x'\n" + "".join(f"a{i} = [a{i - 1}, a{i - 1}]\n" for i in range(1, 31)),
        BEYOND,
    ),
    Escape("plain_infinity", "x = 1e999", "which the process data cannot keep"),
    Escape("plain_ellipsis", "x = ...", "type ellipsis"),
    Escape("plain_complex", "x = 1j", "type complex"),
]

# SpiffArena's helpers (issue 19): copies of what the engine computed, never what is behind.
SPIFF_HELPERS = [
    Escape(
        "zoneinfo_class",
        "z = ZoneInfo('Europe/Berlin')\nc = getattr(z, '__class__')",
        "attribute '__class__' is not allowed",
    ),
    Escape(
        "zoneinfo_path",
        "z = ZoneInfo('../../../etc/passwd')",
        "No time zone found with key",
    ),
    Escape(
        "get_env_closure",
        "c = getattr(get_env, '__closure__')",
        "attribute '__closure__' is not allowed",
    ),
    Escape(
        "kkv_reader_globals",
        "g = getattr(get_last_user_completing_task, '__globals__')",
        "attribute '__globals__' is not allowed",
    ),
    Escape("locals_builtins", "b = locals()['__builtins__']", "KeyError"),
    Escape("locals_guards", "g = locals()['_getattr_']", "KeyError"),
    Escape(
        "markdown_file_download_link",
        "link = markdown_file_download_link('a', 'b')",
        "Baton's forms have no file fields",
    ),
    Escape(
        "parse_date_huge",
        "d = parse_date('1' * 20000000)",
        TEXT_LIMIT,
    ),
]

ESCAPES = IMPORTS + WALKS + BOMBS + PLAIN + SPIFF_HELPERS
