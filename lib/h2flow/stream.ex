defmodule H2Flow.Stream do
  @moduledoc false
  # The body of a request's handler process: runs init/2, then terminate/3 if defined. A crash
  # is logged here, once, with the request it belongs to and without any request body; the
  # process then exits with a reason the connection turns into a 500 or a RST_STREAM.

  require Logger

  # Binaries longer than this are left out of crash reports: they may be request bodies.
  @max_logged_binary 64

  # `conn_metadata`: the connection's Logger metadata (its `h2flow_peer`, formatted once per
  # connection). Set as :logger's process metadata map, which Logger.metadata/1 edits: this
  # process is new, so there is nothing to merge.
  def run(handler, opts, req, conn_metadata) do
    :logger.set_process_metadata(
      Map.merge(conn_metadata, %{
        h2flow_stream_id: req.stream_id,
        h2flow_method: req.method,
        h2flow_path: req.path,
        h2flow_handler: handler
      })
    )

    result =
      try do
        {:ok, handler.init(req, opts)}
      catch
        kind, reason -> {:crash, kind, reason, __STACKTRACE__}
      end

    case result do
      {:ok, {:ok, %H2Flow.Req{} = req, state}} ->
        terminate(handler, :normal, req, state)

      {:ok, other} ->
        Logger.error(fn ->
          "h2flow: #{inspect(handler)}.init/2 returned #{inspect(redact(other))} on " <>
            "#{req.method} #{req.path} (stream #{req.stream_id}); expected {:ok, req, state}, " <>
            "with req the H2Flow.Req returned by the last H2Flow.Req call that changed it " <>
            "(reply/4, stream_reply/3, read_body/2)"
        end)

        reason = {:bad_return, {handler, :init, 2}, redact(other)}
        stop(handler, req, opts, :error, reason, [])

      {:crash, kind, reason, stack} ->
        Logger.error(fn ->
          "h2flow: handler #{inspect(handler)} crashed on #{req.method} #{req.path} " <>
            "(stream #{req.stream_id}):\n" <>
            Exception.format(kind, redact(reason), redact(stack))
        end)

        stop(handler, req, opts, kind, reason, stack)
    end
  end

  # The exit reason carries the crash (redacted) to the connection, for its telemetry.
  defp stop(handler, req, opts, kind, reason, stack) do
    terminate(handler, {:crash, kind, reason}, req, opts)
    exit({:shutdown, {:handler_crash, kind, redact(reason), redact(stack)}})
  end

  defp terminate(handler, reason, req, state) do
    if function_exported?(handler, :terminate, 3) do
      handler.terminate(reason, req, state)
    end

    :ok
  end

  @doc false
  # The term with every binary longer than @max_logged_binary bytes replaced by a note of its
  # size (request bodies in a MatchError, in a stack frame's arguments, ...).
  def redact(term) when is_binary(term) and byte_size(term) > @max_logged_binary,
    do: "<#{byte_size(term)} bytes not logged>"

  def redact(%H2Flow.Req{} = req), do: req

  def redact(%{__exception__: true} = e),
    do: e |> Map.from_struct() |> Map.new(fn {k, v} -> {k, redact(v)} end) |> then(&struct(e, &1))

  def redact(%_{} = struct), do: struct
  def redact(term) when is_map(term), do: Map.new(term, fn {k, v} -> {redact(k), redact(v)} end)
  def redact(term) when is_tuple(term), do: term |> Tuple.to_list() |> redact() |> List.to_tuple()
  def redact([head | tail]), do: [redact(head) | redact(tail)]
  def redact(term), do: term
end
