{
  "targets": [
    {
      "target_name": "aunet_native",
      "sources": [
        "native/addon.cc",
        "native/threadpool.cc",
        "native/isa_generic.cc",
        "native/isa_avx2.cc",
        "native/isa_avx512.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0", "-g"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2", "-O0", "-g"],
      "cflags": ["-O3", "-fno-math-errno", "-pthread", "-Wno-maybe-uninitialized"],
      "cflags_cc": ["-O3", "-std=gnu++17", "-fexceptions", "-fno-math-errno", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "gnu++17",
        "OTHER_CFLAGS": ["-O3", "-fno-math-errno"]
      },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
    }
  ]
}
