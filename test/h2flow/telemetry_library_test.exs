defmodule H2Flow.TelemetryLibraryTest do
  # The telemetry events against the real :telemetry library (tag :telemetry: TELEMETRY_EBIN,
  # or PLUG_EBIN, names its ebin directory; see test/test_helper.exs).
  use H2Flow.Test.TelemetryCases, tag: :telemetry
end
