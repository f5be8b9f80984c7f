defmodule H2Flow.Plug.Handler do
  @moduledoc false
  # Runs a plug for each request: the H2Flow.Handler that the `:plug` option stands for. Builds
  # the Plug.Conn, calls the plug, sends what it left unsent, and answers and logs its errors
  # the way Plug's adapters do.

  @behaviour H2Flow.Handler

  require Logger

  alias H2Flow.Plug.Adapter
  alias H2Flow.Req

  # Without Plug in the build these are runtime calls into the application's Plug.
  @compile {:no_warn_undefined,
            [Plug.Conn, Plug.Conn.NotSentError, Plug.Conn.Status, Plug.Exception]}

  @impl true
  def init(req, {plug, opts} = state) do
    conn = Adapter.conn(req)

    req =
      try do
        conn |> call(plug, opts) |> commit!()
      catch
        kind, reason -> error(kind, reason, __STACKTRACE__, req, conn, plug)
      end

    {:ok, req, state}
  end

  defp call(conn, plug, opts) do
    case plug.call(conn, opts) do
      %{__struct__: Plug.Conn} = conn ->
        conn

      other ->
        raise "expected #{inspect(plug)}.call/2 to return a Plug.Conn, got: #{inspect(other)}"
    end
  end

  # Sends what the plug set but did not send, and ends a chunked response (Plug.Conn.chunk/2
  # never sends an empty chunk, so the end of the stream is ours to send).
  defp commit!(%{state: :unset}), do: raise(Plug.Conn.NotSentError)
  defp commit!(%{state: :set} = conn), do: conn |> Plug.Conn.send_resp() |> commit!()

  defp commit!(%{state: :chunked, adapter: {Adapter, adapter}}) do
    _ = Adapter.finish_chunked(adapter)
    adapter.req
  end

  defp commit!(%{adapter: {Adapter, adapter}}), do: adapter.req

  # Plug's conventions (those of Plug.Cowboy and Bandit): the status is Plug.Exception.status/1
  # of the error (a Plug.BadRequestError is a 400), errors of status 500 and above are logged
  # with the conn and the crash reason as metadata, and a response that had started is reset.
  defp error(kind, reason, stack, req, conn, plug) do
    {kind, reason, stack} = unwrap(kind, reason, stack)
    reason = Exception.normalize(kind, reason, stack)
    status = reason |> Plug.Exception.status() |> Plug.Conn.Status.code()

    if status >= 500 do
      Logger.error(
        fn ->
          "#{inspect(self())} running #{inspect(plug)} (connection #{inspect(req.conn)}, " <>
            "stream id #{req.stream_id}) terminated\n" <>
            "Server: #{conn.host}:#{conn.port} (#{conn.scheme})\n" <>
            "Request: #{conn.method} #{conn.request_path}\n" <>
            Exception.format(kind, reason, stack)
        end,
        domain: [:h2flow],
        crash_reason: crash_reason(kind, reason, stack),
        conn: conn,
        plug: plug
      )
    end

    case Adapter.response_started() do
      nil -> Req.reply(status, %{}, "", req)
      :sent -> %{req | resp: :sent}
      :streaming -> reset(req)
    end
  end

  defp reset(req) do
    :ok = Req.reset(req, :internal_error)
    %{req | resp: :sent}
  end

  # Plug.ErrorHandler and Plug.Debugger wrap what they re-raise.
  defp unwrap(:error, %{__struct__: Plug.Conn.WrapperError} = e, _stack),
    do: unwrap(e.kind, e.reason, e.stack)

  defp unwrap(kind, reason, stack), do: {kind, reason, stack}

  defp crash_reason(:throw, reason, stack), do: {{:nocatch, reason}, stack}
  defp crash_reason(_kind, reason, stack), do: {reason, stack}
end
