defmodule H2Flow.Connection.Spans do
  @moduledoc false
  # The telemetry span of each stream ([:h2flow, :request, ...], see H2Flow.Telemetry): starts
  # with its handler, counts the body bytes both ways, and ends when the handler returns,
  # crashes or is stopped. Without telemetry a stream has no span (nil) and nothing here runs.

  alias H2Flow.Telemetry

  @doc "Emits `:start`; returns the span. `held`: body bytes that arrived before it started."
  def start(config, req, held \\ 0) do
    meta = %{
      method: req.method,
      path: req.path,
      version: req.version,
      stream_id: req.stream_id,
      peer: req.peer,
      handler: handler(config)
    }

    now = System.monotonic_time()
    Telemetry.execute(config, [:h2flow, :request, :start], %{monotonic_time: now}, meta)
    # Body bytes that arrived with the request are in it, or held for its first read.
    received = if(is_list(req.body), do: IO.iodata_length(req.body), else: 0) + held
    %{start: now, meta: meta, received: received, sent: 0}
  end

  @doc "The handler module of a server's streams: the plug, for a server running one."
  def handler(%{handler: H2Flow.Plug.Handler, handler_opts: {plug, _}}), do: plug
  def handler(%{handler: handler}), do: handler

  def received(%{span: span} = s, n), do: %{s | span: %{span | received: span.received + n}}
  def sent(%{span: span} = s, n), do: %{s | span: %{span | sent: span.sent + n}}

  @doc "Emits `:stop`: `error` is nil, or why the handler was stopped."
  def stop(config, s, error) do
    meta = Map.merge(s.span.meta, %{status: status(s.status), error: error})
    Telemetry.execute(config, [:h2flow, :request, :stop], measurements(s.span), meta)
  end

  @doc "Emits `:exception` for a handler's exit `reason`."
  def exception(config, s, reason) do
    {kind, reason, stack} =
      case reason do
        {:shutdown, {:handler_crash, kind, reason, stack}} -> {kind, reason, stack}
        {:invalid_response, e} -> {:error, e, []}
        other -> {:exit, other, []}
      end

    meta =
      Map.merge(s.span.meta, %{
        status: status(s.status),
        error: nil,
        kind: kind,
        reason: reason,
        stacktrace: stack
      })

    Telemetry.execute(config, [:h2flow, :request, :exception], measurements(s.span), meta)
  end

  defp measurements(span) do
    now = System.monotonic_time()

    %{
      monotonic_time: now,
      duration: now - span.start,
      req_body_bytes: span.received,
      resp_body_bytes: span.sent
    }
  end

  defp status(nil), do: nil
  defp status(<<status::binary-size(3), _::binary>>), do: String.to_integer(status)
end
