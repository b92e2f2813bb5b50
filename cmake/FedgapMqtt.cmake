# FEDGAP_MQTT = AUTO | ON | OFF: real devices over an MQTT broker (mqtt/; `fedgap serve`, `fedgap device`).
#   AUTO: build the MQTT transport when libmosquitto and OpenSSL's libcrypto are found (Debian:
#         libmosquitto-dev, libssl-dev), else skip it.
#   ON:   a missing library is a configure error.   OFF: never touch MQTT.
# Without it, `fedgap serve` and `fedgap device` say that this build has no MQTT transport.
set(FEDGAP_WITH_MQTT OFF)
string(TOUPPER "${FEDGAP_MQTT}" _fg_mqtt_mode)
if(NOT _fg_mqtt_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "FEDGAP_MQTT must be AUTO, ON or OFF (got '${FEDGAP_MQTT}')")
endif()
if(NOT _fg_mqtt_mode STREQUAL "OFF")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(MOSQUITTO QUIET IMPORTED_TARGET libmosquitto)
    pkg_check_modules(LIBCRYPTO QUIET IMPORTED_TARGET libcrypto)
  endif()
  find_program(FEDGAP_MOSQUITTO_BROKER mosquitto PATHS /usr/sbin /usr/local/sbin)
  find_program(FEDGAP_OPENSSL openssl)
  if(MOSQUITTO_FOUND AND LIBCRYPTO_FOUND)
    set(FEDGAP_WITH_MQTT ON)
    message(STATUS "fedgap: MQTT transport ON (libmosquitto ${MOSQUITTO_VERSION}, libcrypto ${LIBCRYPTO_VERSION})")
  elseif(_fg_mqtt_mode STREQUAL "ON")
    message(FATAL_ERROR "FEDGAP_MQTT=ON but libmosquitto or libcrypto was not found (scripts/install-deps.sh installs "
                        "libmosquitto-dev and libssl-dev)")
  else()
    message(STATUS "fedgap: MQTT transport not built: libmosquitto or libcrypto was not found")
  endif()
endif()
