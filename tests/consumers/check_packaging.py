#!/usr/bin/env python3
"""Structural checks of synod's Conan recipe and vcpkg port.

Neither the Conan nor the vcpkg registry is reachable from synod's build machines, so the
recipes cannot be built for real here. This script checks what can be checked offline:

  check_packaging.py conan <synod source tree> <expected version>
      conanfile.py and test_package/ parse; the recipe declares what conan-center expects of
      a header-only package; its methods run against a minimal stand-in for the `conan`
      module (validate() accepts C++20 and rejects C++17 and old compilers, package() copies
      the headers and the license, package_info() names the CMake/pkg-config package the
      way synod's own install does).

  check_packaging.py vcpkg <synod source tree> <expected version>
      ports/synod/vcpkg.json parses as JSON and has name/version/dependencies (the Boost
      libraries, and vcpkg-cmake/vcpkg-cmake-config as host tools); portfile.cmake makes the
      vcpkg-cmake calls the port needs, with synod's extras turned off; usage exists.

Exits non-zero with a list of problems on failure.
"""

import ast
import json
import os
import re
import shutil
import sys
import tempfile
import types

problems = []


def expect(ok, what):
    if not ok:
        problems.append(what)
    return ok


# --------------------------------------------------------------------------------------
# Conan
# --------------------------------------------------------------------------------------


class InvalidConfiguration(Exception):
    pass


class Setting:
    """Just enough of conan's settings objects: str(), nested attributes, get_safe()."""

    def __init__(self, value=None, **children):
        self._value = value
        self._children = children

    def __str__(self):
        return str(self._value)

    def __eq__(self, other):
        return str(self) == str(other)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._children.get(name, Setting(None))

    def get_safe(self, dotted, default=None):
        node = self
        for part in dotted.split("."):
            node = node._children.get(part)
            if node is None:
                return default
        return node._value if node._value is not None else default


class CppInfo:
    def __init__(self):
        self.properties = {}
        self.bindirs = ["bin"]
        self.libdirs = ["lib"]
        self.includedirs = ["include"]
        self.requires = []
        self.system_libs = []

    def set_property(self, name, value):
        self.properties[name] = value


class Info:
    def __init__(self):
        self.cleared = False

    def clear(self):
        self.cleared = True


class Version:
    def __init__(self, value):
        self.parts = tuple(int(p) for p in re.findall(r"\d+", str(value)))

    def _cmp(self, other):
        other = other if isinstance(other, Version) else Version(other)
        a, b = list(self.parts), list(other.parts)
        n = max(len(a), len(b))
        a += [0] * (n - len(a))
        b += [0] * (n - len(b))
        return (a > b) - (a < b)

    def __lt__(self, other):
        return self._cmp(other) < 0

    def __ge__(self, other):
        return self._cmp(other) >= 0


def stub_conan_modules(calls):
    """Install a minimal `conan` package into sys.modules, recording what the recipe calls."""

    class ConanFile:
        def __init__(self):
            self.settings = None
            self.cpp_info = CppInfo()
            self.info = Info()
            self.source_folder = None
            self.package_folder = None
            self.requirements_made = []
            self.ref = f"{getattr(self, 'name', '?')}/{getattr(self, 'version', '?')}"

        def requires(self, ref, **traits):
            self.requirements_made.append((ref, traits))

    def check_min_cppstd(conanfile, cppstd, gnu_extensions=False):
        calls.append(("check_min_cppstd", int(cppstd)))
        current = conanfile.settings.get_safe("compiler.cppstd")
        if current is not None and int(str(current).replace("gnu", "")) < int(cppstd):
            raise InvalidConfiguration(f"needs C++{cppstd}, have {current}")

    def copy(conanfile, pattern, src, dst, keep_path=True, excludes=None, ignore_case=True):
        import fnmatch

        calls.append(("copy", pattern))
        copied = []
        for root, _dirs, files in os.walk(src):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), src)
                if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(f, pattern):
                    target = os.path.join(dst, rel if keep_path else f)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(os.path.join(root, f), target)
                    copied.append(rel)
        return copied

    def basic_layout(conanfile, src_folder=".", build_folder=None):
        calls.append(("basic_layout", src_folder))

    def cmake_layout(conanfile, generator=None, src_folder=".", build_folder="build"):
        calls.append(("cmake_layout", src_folder))

    def can_run(conanfile):
        return True

    class CMake:
        def __init__(self, conanfile):
            pass

        def configure(self, *args, **kwargs):
            pass

        def build(self, *args, **kwargs):
            pass

    modules = {
        "conan": {"ConanFile": ConanFile},
        "conan.errors": {"ConanInvalidConfiguration": InvalidConfiguration,
                         "ConanException": Exception},
        "conan.tools": {},
        "conan.tools.build": {"check_min_cppstd": check_min_cppstd, "can_run": can_run},
        "conan.tools.files": {"copy": copy},
        "conan.tools.layout": {"basic_layout": basic_layout},
        "conan.tools.cmake": {"CMake": CMake, "cmake_layout": cmake_layout,
                              "CMakeToolchain": object, "CMakeDeps": object},
        "conan.tools.scm": {"Version": Version},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


def load_recipe(path):
    namespace = {"__file__": path, "__name__": "conanfile"}
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    exec(code, namespace)  # noqa: S102 - our own recipe, against stub modules
    base = sys.modules["conan"].ConanFile
    classes = [v for v in namespace.values()
               if isinstance(v, type) and issubclass(v, base) and v is not base]
    expect(len(classes) == 1, f"{path}: expected exactly one ConanFile subclass")
    return namespace, classes[0] if classes else None


def settings(compiler="gcc", version="12", cppstd="20"):
    compiler_children = {"version": Setting(version)}
    if cppstd is not None:
        compiler_children["cppstd"] = Setting(cppstd)
    return Setting(None, os=Setting("Linux"), arch=Setting("x86_64"),
                   build_type=Setting("Release"),
                   compiler=Setting(compiler, **compiler_children))


def check_conan(root, expected_version):
    recipe_path = os.path.join(root, "conanfile.py")
    tp_dir = os.path.join(root, "test_package")
    for path in (recipe_path, os.path.join(tp_dir, "conanfile.py")):
        with open(path, encoding="utf-8") as f:
            ast.parse(f.read(), path)  # SyntaxError -> traceback -> non-zero exit
    for f in ("CMakeLists.txt", "test_package.cpp"):
        expect(os.path.isfile(os.path.join(tp_dir, f)), f"test_package/{f} is missing")

    calls = []
    stub_conan_modules(calls)
    namespace, recipe = load_recipe(recipe_path)
    if recipe is None:
        return

    # Attributes conan-center expects of a header-only package.
    expect(namespace.get("required_conan_version", "").startswith(">=2"),
           "required_conan_version should require Conan 2")
    expect(recipe.name == "synod", f"name is {recipe.name!r}")
    expect(recipe.version == expected_version,
           f"version {recipe.version!r} differs from CMake's {expected_version!r}")
    expect(recipe.license == "BSL-1.0", f"license is {recipe.license!r}")
    expect(recipe.package_type == "header-library", "package_type must be header-library")
    expect(getattr(recipe, "no_copy_source", False) is True, "no_copy_source must be True")
    expect(set(recipe.settings) == {"os", "arch", "compiler", "build_type"},
           f"settings are {recipe.settings!r}")
    for attr in ("description", "homepage", "url", "topics"):
        expect(getattr(recipe, attr, None), f"{attr} is missing")
    exported = recipe.exports_sources
    exported = (exported,) if isinstance(exported, str) else tuple(exported)
    for needed in ("include/*", "CMakeLists.txt", "cmake/*", "LICENSE"):
        expect(needed in exported, f"exports_sources lacks {needed!r}")
    for pattern in exported:
        base = pattern.split("*")[0].rstrip("/") or "."
        expect(os.path.exists(os.path.join(root, base)),
               f"exports_sources names {pattern!r}, which does not exist")
    expect(recipe.default_options.get("boost/*:header_only") is True,
           "default_options must make Boost header-only")

    # requirements(): Boost, headers visible to synod's consumers.
    conanfile = recipe()
    conanfile.settings = settings()
    conanfile.requirements()
    boost = [(r, t) for r, t in conanfile.requirements_made if r.startswith("boost/")]
    expect(len(boost) == 1, "requirements() must require boost exactly once")
    if boost:
        expect(boost[0][1].get("transitive_headers", False),
               "boost must be required with transitive_headers=True")
    expect(not hasattr(recipe, "test_requires") or not callable(getattr(recipe, "test_requires")),
           "the recipe should have no test_requires")

    # layout()
    calls.clear()
    conanfile.layout()
    expect(("basic_layout", ".") in calls or any(c[0] == "cmake_layout" for c in calls),
           "layout() must use basic_layout (src_folder='.', where exports_sources land)")

    # validate(): C++20 accepted, C++17 and old compilers rejected.
    calls.clear()
    try:
        conanfile.validate()
    except InvalidConfiguration as e:
        expect(False, f"validate() rejects gcc 12 / C++20: {e}")
    expect(("check_min_cppstd", 20) in calls, "validate() must call check_min_cppstd(self, 20)")
    for bad in (settings(cppstd="17"), settings(cppstd="gnu17"),
                settings(version="9", cppstd=None)):
        candidate = recipe()
        candidate.settings = bad
        try:
            candidate.validate()
            expect(False, "validate() accepts a configuration without C++20: "
                          f"compiler {bad.compiler} {bad.compiler.version} "
                          f"cppstd {bad.get_safe('compiler.cppstd')}")
        except InvalidConfiguration:
            pass

    # package_id(): header-only, one package for every configuration.
    conanfile.package_id()
    expect(conanfile.info.cleared, "package_id() must call self.info.clear()")

    # package(): headers and license, from the exported sources.
    with tempfile.TemporaryDirectory() as pkg:
        conanfile.source_folder = root
        conanfile.package_folder = pkg
        conanfile.package()
        expect(os.path.isfile(os.path.join(pkg, "licenses", "LICENSE")),
               "package() must copy LICENSE to licenses/")
        for header in ("synod/version.hpp", "synod/core/ids.hpp"):
            expect(os.path.isfile(os.path.join(pkg, "include", header)),
                   f"package() must copy include/{header}")
        for top in os.listdir(pkg):
            expect(top in ("include", "licenses"), f"package() also creates {top}/")

    # package_info(): same names as synod's own CMake package and pkg-config file.
    conanfile.package_info()
    info = conanfile.cpp_info
    expect(info.bindirs == [] and info.libdirs == [], "bindirs and libdirs must be empty")
    expect(info.properties.get("cmake_file_name") == "synod", "cmake_file_name must be synod")
    expect(info.properties.get("cmake_target_name") == "synod::synod",
           "cmake_target_name must be synod::synod")
    expect(info.properties.get("pkg_config_name") == "synod", "pkg_config_name must be synod")

    # test_package: conan 2 style.
    tp_namespace, tp_recipe = load_recipe(os.path.join(tp_dir, "conanfile.py"))
    if tp_recipe is not None:
        generators = tp_recipe.generators
        generators = (generators,) if isinstance(generators, str) else tuple(generators)
        for gen in ("CMakeDeps", "CMakeToolchain"):
            expect(gen in generators, f"test_package generators lack {gen}")
        tp = tp_recipe()
        tp.tested_reference_str = f"synod/{expected_version}"
        tp.requirements()
        expect([r for r, _ in tp.requirements_made] == [tp.tested_reference_str],
               "test_package must require self.tested_reference_str (and nothing else)")
        with open(os.path.join(tp_dir, "conanfile.py"), encoding="utf-8") as f:
            expect("can_run(self)" in f.read(), "test_package test() must check can_run(self)")
    with open(os.path.join(tp_dir, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
        expect(re.search(r"find_package\(\s*synod\b", text), "test_package must find_package(synod)")
        expect("synod::synod" in text, "test_package must link synod::synod")


# --------------------------------------------------------------------------------------
# vcpkg
# --------------------------------------------------------------------------------------


def check_vcpkg(root, expected_version):
    port = os.path.join(root, "ports", "synod")
    with open(os.path.join(port, "vcpkg.json"), encoding="utf-8") as f:
        manifest = json.load(f)  # JSONDecodeError -> traceback -> non-zero exit
    expect(isinstance(manifest, dict), "vcpkg.json must be an object")
    expect(manifest.get("name") == "synod", f"name is {manifest.get('name')!r}")
    versions = [manifest[k] for k in ("version", "version-semver", "version-string",
                                      "version-date") if k in manifest]
    expect(versions == [expected_version],
           f"expected exactly one version field equal to {expected_version!r}, got {versions}")
    expect(manifest.get("license") == "BSL-1.0", "license must be BSL-1.0")
    expect(manifest.get("description"), "description is missing")
    expect(manifest.get("homepage"), "homepage is missing")

    deps = manifest.get("dependencies")
    expect(isinstance(deps, list) and deps, "dependencies must be a non-empty list")
    names, host = set(), set()
    for dep in deps or []:
        if isinstance(dep, str):
            names.add(dep)
        elif expect(isinstance(dep, dict) and "name" in dep, f"bad dependency entry {dep!r}"):
            names.add(dep["name"])
            if dep.get("host") is True:
                host.add(dep["name"])
    for needed in ("boost-asio", "boost-endian", "boost-container", "boost-intrusive"):
        expect(needed in names, f"dependencies lack {needed}")
    for tool in ("vcpkg-cmake", "vcpkg-cmake-config"):
        expect(tool in host, f"{tool} must be a host dependency")

    with open(os.path.join(port, "portfile.cmake"), encoding="utf-8") as f:
        portfile = f.read()
    for needed in ("vcpkg_cmake_configure(", "vcpkg_cmake_install(", "vcpkg_fixup_pkgconfig(",
                   "vcpkg_install_copyright(", "-DSYNOD_BUILD_TESTS=OFF",
                   "-DSYNOD_BUILD_EXAMPLES=OFF", "-DSYNOD_BUILD_BENCHMARKS=OFF",
                   "/debug"):
        expect(needed in portfile, f"portfile.cmake lacks {needed}")
    # The fixup must point where synod's CMakeLists.txt installs its package config.
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        top = f.read()
    m = re.search(r"set\(SYNOD_CMAKE_DIR\s+\$\{CMAKE_INSTALL_DATADIR\}/([^)\s]+)\)", top)
    install_dir = f"share/{m.group(1)}" if m else "share/cmake/synod"
    expect(re.search(r"vcpkg_cmake_config_fixup\(\s*CONFIG_PATH\s+" + re.escape(install_dir),
                     portfile),
           f"portfile.cmake must call vcpkg_cmake_config_fixup(CONFIG_PATH {install_dir})")

    usage = os.path.join(port, "usage")
    if expect(os.path.isfile(usage), "ports/synod/usage is missing"):
        with open(usage, encoding="utf-8") as f:
            text = f.read()
        expect("find_package(synod" in text and "synod::synod" in text,
               "usage must show find_package(synod ...) and synod::synod")


def main(argv):
    if len(argv) != 4 or argv[1] not in ("conan", "vcpkg"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, root, expected_version = argv[1], os.path.abspath(argv[2]), argv[3]
    {"conan": check_conan, "vcpkg": check_vcpkg}[kind](root, expected_version)
    if problems:
        for p in problems:
            print(f"{kind}: {p}", file=sys.stderr)
        print(f"{kind}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{kind}: recipe checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
