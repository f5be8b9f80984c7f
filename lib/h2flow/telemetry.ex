defmodule H2Flow.Telemetry do
  # Owns the telemetry events h2flow emits: their names, measurements and metadata, and the
  # run-time check that the :telemetry application is there.
  @moduledoc """
  The [`:telemetry`](https://hexdocs.pm/telemetry) events h2flow emits.

  h2flow does not depend on `:telemetry`: a server emits these events when the `:telemetry`
  application is started at the time the server starts (an application that uses
  Telemetry.Metrics, a Prometheus exporter or Phoenix has it), and does nothing otherwise.

      defmodule MyApp.SlowRequests do
        def handle_event([:h2flow, :request, :stop], %{duration: duration}, meta, _config) do
          ms = System.convert_time_unit(duration, :native, :millisecond)
          if ms > 500, do: IO.puts("slow: \#{meta.method} \#{meta.path} -> \#{meta.status}")
        end
      end

      :telemetry.attach(
        "log-slow-requests",
        [:h2flow, :request, :stop],
        &MyApp.SlowRequests.handle_event/4,
        nil
      )

      {:ok, server} =
        H2Flow.start_link(handler: MyApp.Hello, port: 8080, telemetry_metadata: %{listener: :public})

  Times are in `:native` units (`System.convert_time_unit/3`). Every event's metadata also
  holds the server's `:telemetry_metadata` option (a map, default `%{}`), merged in: the keys
  below win over keys of the same name in it.

  | event | measurements | metadata |
  |---|---|---|
  | `[:h2flow, :request, :start]` | `monotonic_time` | `method`, `path`, `version` (`:"HTTP/2"`, `:"HTTP/1.1"`, `:"HTTP/1.0"`), `stream_id` (over HTTP/1.1 the request's number on its connection), `peer`, `handler` |
  | `[:h2flow, :request, :stop]` | `monotonic_time`, `duration`, `req_body_bytes`, `resp_body_bytes` | as `:start`, plus `status` (the response's, an integer; `nil` if none was sent) and `error` (`nil`, or why the handler was stopped: `:stream_reset` by the peer, `:connection_closed`) |
  | `[:h2flow, :request, :exception]` | as `:stop` | as `:stop`, plus `kind`, `reason` and `stacktrace` of the handler's crash (binaries longer than 64 bytes left out) |
  | `[:h2flow, :connection, :start]` | `monotonic_time` | `peer`, `transport` (`:tcp` or `:tls`) |
  | `[:h2flow, :connection, :stop]` | `monotonic_time`, `duration`, `window_updates_sent`, `stalls`, `peak_buffered_bytes`, `streams`, `bytes_received`, `bytes_sent` | `peer`, `transport`, `protocol` (`:http2`, `:http1`, or `nil` when the client sent nothing to tell), `reason` (why it ended: `:closed` by the peer, `:goaway`, `:idle`, `:drained`, `:preface_timeout`, `{:connection_error, code, message}`; over HTTP/1.1 `:done` after its last response, `{:rejected, status, kind, message}` after a refused request, ...) |
  | `[:h2flow, :defence]` | `count` (1) | `defence` (`:rapid_reset`, `:continuation_flood`, `:ack_flood`, `:settings_flood`, `:empty_frames`, `:header_list_too_large`, `:refused_stream_flood`, `:reset_flood`), `peer` |
  | `[:h2flow, :flow_control, :stall]` | `count` (1) | `stream_id`, `peer`: the peer let none of the stream's response go for `:send_stall_timeout`, and the stream was reset |

  A request span starts when the request's handler starts and ends when it returns (`:stop`),
  crashes (`:exception`), or is stopped because its stream or connection went away (`:stop`
  with `error`). `req_body_bytes` counts the request body bytes that arrived for the stream,
  `resp_body_bytes` the response body bytes the handler sent (a `HEAD` response sends none).
  The connection counters at `:stop` are those of `H2Flow.Engine.stats/1`:
  `window_updates_sent` is `window_update_frames.connection + .stream`, `streams` is
  `streams_opened`; over HTTP/1.1 (no windows) `streams` counts requests and
  `peak_buffered_bytes` the request-body bytes held that no read asked for. An h2c upgrade
  ends as an HTTP/2 connection. A connection span starts once the TLS handshake is done (over TLS), so a
  failed handshake emits nothing (it is counted in `H2Flow.stats/1`'s
  `:tls_handshake_failures`).

  Handlers run in a process of their own: a telemetry handler attached to `:request` events
  runs in the handler's connection process, so keep it short.
  """

  @compile {:no_warn_undefined, :telemetry}

  @doc false
  # Whether servers started now emit events: :telemetry is loaded and its application started
  # (without it, :telemetry.execute/3 would warn on every call).
  @spec enabled?() :: boolean()
  def enabled? do
    Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :execute, 3) and
      List.keymember?(Application.started_applications(), :telemetry, 0)
  end

  @doc false
  def execute(%{telemetry: true, telemetry_metadata: extra}, event, measurements, metadata) do
    :telemetry.execute(event, measurements, Map.merge(extra, metadata))
  end

  def execute(_config, _event, _measurements, _metadata), do: :ok
end
