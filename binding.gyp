{
  "targets": [
    {
      "target_name": "llava_rad",
      "type": "none",
      "actions": [
        {
          "action_name": "build_engine_with_cmake",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["<(module_root_dir)/build/Release/llava_rad.node"],
          "action": ["node", "<(module_root_dir)/scripts/build-native.mjs"]
        }
      ]
    }
  ]
}
