# `cmake --install` puts the model library, its headers and a package config
# in the prefix, so that other LibTorch projects can write
#   find_package(MobileNetV2 CONFIG REQUIRED [COMPONENTS vision])
#   target_link_libraries(app PRIVATE MobileNetV2::mobilenetv2)
# MobileNetV2::classifier (mnv2::ImageClassifier: LibTorch, libhdf5 by path)
# always comes along; MobileNetV2::vision (OpenCV) only with the component;
# MobileNetV2::onednn where the oneDNN add-on was built (`if(TARGET
# MobileNetV2::onednn)`), with the oneDNN it was built with found again from
# the folder recorded in the config (no dnnl_DIR needed).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MNV2_CONFIG_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/MobileNetV2")

install(TARGETS mobilenetv2 mnv2_atomic_file mobilenetv2_classifier
        EXPORT MobileNetV2Targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(folder util nn torch_files preprocessing quantization engines weights keras
               classifier)
  install(DIRECTORY models/${folder}/include/mobilenetv2
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endforeach()
# The vision component in an export set of its own, read only when a
# consumer asks for it (and so finds OpenCV only then).
install(TARGETS mobilenetv2_vision EXPORT MobileNetV2VisionTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY models/vision/include/mobilenetv2
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT MobileNetV2VisionTargets NAMESPACE MobileNetV2::
        DESTINATION ${MNV2_CONFIG_DIR})
# The optional add-on MobileNetV2::onednn, where it was built.
if(MNV2_WITH_ONEDNN)
  install(TARGETS mobilenetv2_onednn mnv2_onednn_executor
          EXPORT MobileNetV2Targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY models/engines/onednn/include/mobilenetv2
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()
install(EXPORT MobileNetV2Targets NAMESPACE MobileNetV2::
        DESTINATION ${MNV2_CONFIG_DIR})

# Where the oneDNN add-on's oneDNN was found, as the config's search hint.
if(MNV2_WITH_ONEDNN)
  get_filename_component(MNV2_DNNL_DIR "${dnnl_DIR}" REALPATH)
endif()
# The LibTorch minor version the config requires of a consumer.
string(REGEX MATCH "^[0-9]+\\.[0-9]+" MNV2_TORCH_MINOR "${Torch_VERSION}")
configure_package_config_file(cmake/MobileNetV2Config.cmake.in
  "${PROJECT_BINARY_DIR}/MobileNetV2Config.cmake"
  INSTALL_DESTINATION ${MNV2_CONFIG_DIR})
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/MobileNetV2ConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/MobileNetV2Config.cmake"
              "${PROJECT_BINARY_DIR}/MobileNetV2ConfigVersion.cmake"
              cmake/MNV2TorchWheel.cmake
        DESTINATION ${MNV2_CONFIG_DIR})
