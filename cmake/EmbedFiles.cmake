# outpost_embed_files(OUT_CPP NAMESPACE FILES...) generates a C++ source that defines
#   const outpost::EmbeddedFile* <namespace>::EmbeddedFiles(size_t* count)
# holding each file's base name and contents, so .cl sources ship inside the binary.
function(outpost_embed_files out_cpp func)
  set(files ${ARGN})
  add_custom_command(
    OUTPUT ${out_cpp}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out_cpp} -DFUNC=${func} "-DFILES=${files}"
            -P ${PROJECT_SOURCE_DIR}/cmake/EmbedFilesScript.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/cmake/EmbedFilesScript.cmake
    COMMENT "Embedding ${func} sources"
    VERBATIM)
endfunction()
