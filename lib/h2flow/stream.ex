defmodule H2Flow.Stream do
  @moduledoc false
  # The body of a request's handler process: runs init/2, then terminate/3 if defined. A crash
  # is logged here, once, with the request it belongs to; the process then exits with a reason
  # the connection turns into a 500 or a RST_STREAM.

  require Logger

  def run(handler, opts, req) do
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
        crash(handler, req, opts, :error, {:bad_return, other}, [])

      {:crash, kind, reason, stack} ->
        crash(handler, req, opts, kind, reason, stack)
    end
  end

  defp crash(handler, req, opts, kind, reason, stack) do
    Logger.error(fn ->
      "h2flow: handler #{inspect(handler)} crashed on #{req.method} #{req.path} " <>
        "(stream #{req.stream_id}):\n" <> Exception.format(kind, reason, stack)
    end)

    terminate(handler, {:crash, kind, reason}, req, opts)
    exit({:shutdown, :handler_crash})
  end

  defp terminate(handler, reason, req, state) do
    if function_exported?(handler, :terminate, 3) do
      handler.terminate(reason, req, state)
    end

    :ok
  end
end
