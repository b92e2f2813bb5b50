# Run at every build (cmake -P, from the fedgap_revision target): writes OUT, the header that names
# the git revision of the source tree SRC (git describe; "unknown" outside git), only when the
# revision changed, so a build after a commit records the new revision and an unchanged tree
# recompiles nothing.
execute_process(COMMAND git describe --always --dirty --abbrev=12
  WORKING_DIRECTORY ${SRC} OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT rev)
  set(rev "unknown")
endif()
set(text "/* Generated at every build (cmake/FedgapRevision.cmake): the git revision of the source tree. */
#ifndef FEDGAP_REVISION_H
#define FEDGAP_REVISION_H
#define FEDGAP_GIT_REV \"${rev}\"
#endif
")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
