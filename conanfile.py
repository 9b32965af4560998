import os

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout
from conan.tools.scm import Version

required_conan_version = ">=2.0"


class SynodConan(ConanFile):
    name = "synod"
    version = "0.1.0"
    description = "Header-only C++20 Raft coordination library"
    license = "BSL-1.0"
    url = "https://example.invalid/synod"
    homepage = "https://example.invalid/synod"
    topics = ("raft", "consensus", "replication", "distributed-systems", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    # Boost is only needed for its headers (Asio, Endian, Container, Intrusive).
    default_options = {"boost/*:header_only": True}
    no_copy_source = True
    # The recipe lives in synod's own repository: the sources travel with it.
    exports_sources = "include/*", "CMakeLists.txt", "cmake/*", "LICENSE"

    @property
    def _min_cppstd(self):
        return 20

    @property
    def _compilers_minimum_version(self):
        # Compilers with the C++20 features synod relies on (concepts, <=>, <span>).
        return {
            "gcc": "11",
            "clang": "14",
            "apple-clang": "14",
            "msvc": "193",
            "Visual Studio": "17",
        }

    def layout(self):
        # exports_sources land at the root of the source folder, so keep src_folder=".".
        basic_layout(self, src_folder=".")

    def requirements(self):
        # synod's public headers include Boost headers: they must reach synod's consumers.
        self.requires("boost/1.81.0", transitive_headers=True)

    def package_id(self):
        self.info.clear()

    def validate(self):
        # conan-center convention: check the declared standard when there is one, and the
        # compiler's version always (pass -s compiler.cppstd=20 or newer).
        if self.settings.compiler.get_safe("cppstd"):
            check_min_cppstd(self, self._min_cppstd)
        minimum_version = self._compilers_minimum_version.get(str(self.settings.compiler), False)
        if minimum_version and Version(self.settings.compiler.version) < minimum_version:
            raise ConanInvalidConfiguration(
                f"{self.ref} requires C++{self._min_cppstd}, which your compiler "
                f"({self.settings.compiler} {self.settings.compiler.version}) does not support."
            )

    def package(self):
        copy(
            self,
            "LICENSE",
            src=self.source_folder,
            dst=os.path.join(self.package_folder, "licenses"),
        )
        # Everything under include/, as synod's own CMake install does.
        copy(
            self,
            "*",
            src=os.path.join(self.source_folder, "include"),
            dst=os.path.join(self.package_folder, "include"),
        )

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []

        # Same names as synod's own CMake package and pkg-config file.
        self.cpp_info.set_property("cmake_file_name", "synod")
        self.cpp_info.set_property("cmake_target_name", "synod::synod")
        self.cpp_info.set_property("pkg_config_name", "synod")

        self.cpp_info.requires = ["boost::headers"]
