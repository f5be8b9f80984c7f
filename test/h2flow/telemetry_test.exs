# The telemetry events against a stand-in :telemetry (test/support/telemetry_standin.exs), in a
# VM without the real library (tag :no_telemetry; telemetry_library_test.exs runs the same
# tests against the real one).
unless Code.ensure_loaded?(:telemetry) do
  Code.require_file("../support/telemetry_standin.exs", __DIR__)
end

defmodule H2Flow.TelemetryTest do
  use H2Flow.Test.TelemetryCases, tag: :no_telemetry

  setup_all do
    :telemetry.start_standin()
  end
end
