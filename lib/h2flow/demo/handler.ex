defmodule H2Flow.Demo.Handler do
  @moduledoc false
  # The demo's handler (see H2Flow.Demo for its endpoints): the page, /slow, /echo, /stats and
  # the page's reports.

  @behaviour H2Flow.Handler

  alias H2Flow.Demo.Counters
  alias H2Flow.Req

  @max_ms 60_000
  @max_report_bytes 16_384
  @max_report_fields 64

  @page_path Path.expand("../../../priv/demo/index.html", __DIR__)
  @external_resource @page_path
  @page File.read!(@page_path)

  @impl true
  def init(req, state) do
    req =
      case {Req.method(req), Req.path(req)} do
        {"GET", "/"} -> index(req)
        {"GET", "/slow"} -> slow(req, state)
        {"POST", "/echo"} -> echo(req, state)
        {"GET", "/stats"} -> stats(req, state)
        {"GET", "/report"} -> get_report(req, state)
        {"POST", "/report"} -> post_report(req, state)
        {"POST", "/reset"} -> post_reset(req, state)
        {"GET", "/favicon.ico"} -> Req.reply(204, req)
        {_, path} when path in ["/", "/slow", "/stats"] -> not_allowed(req, "GET")
        {_, "/echo"} -> not_allowed(req, "POST")
        {_, "/reset"} -> not_allowed(req, "POST")
        {_, "/report"} -> not_allowed(req, "GET, POST")
        _ -> reply(req, 404, "text/plain", "not found\n")
      end

    {:ok, req, state}
  end

  # The page for browsers; a few lines of text for clients that do not ask for HTML (curl).
  defp index(req) do
    if Req.header("accept", req, "") =~ "text/html" do
      reply(req, 200, "text/html; charset=utf-8", @page)
    else
      text =
        "h2flow demo: hello over #{Req.version(req)} (#{Req.scheme(req)}).\n" <>
          "Open this URL in a browser (https for HTTP/2) for the flow-control experiment; " <>
          "endpoints: /slow?ms=N, POST /echo, /stats.\n"

      reply(req, 200, "text/plain", text)
    end
  end

  defp slow(req, %{counters: ref, table: table}) do
    ms = req |> query_param("ms", "1000") |> parse_int(1000) |> min(@max_ms) |> max(0)
    # A TCP connection is one client address and port: this shows whether the browser put all
    # the requests on one connection, as HTTP/2 clients should (RFC 9113 9.1).
    key = {:slow_peer, Req.peer(req)}
    :ets.update_counter(table, key, 1, {key, 0})
    # Exactly one of this process and its watcher takes the request out of in_flight: the
    # connection kills a handler (untrappably) when the peer resets its stream, and the count
    # must come back down then too.
    taken = :atomics.new(1, [])
    leave = fn -> if :atomics.exchange(taken, 1, 1) == 0, do: add(ref, :in_flight, -1) end
    handler = self()

    spawn(fn ->
      monitor = Process.monitor(handler)

      receive do
        {:DOWN, ^monitor, _, _, _} -> leave.()
      end
    end)

    add(ref, :slow_started, 1)
    raise_peak(ref, add(ref, :in_flight, 1))
    Process.sleep(ms)
    # Leave before replying: once the reply is out the client may open the next stream, and
    # counting both would overstate the peak.
    leave.()
    add(ref, :slow_completed, 1)
    reply(req, 200, "text/plain", "slept #{ms} ms\n")
  end

  defp echo(req, %{counters: ref}) do
    {size, largest, req} = read_all(req, 0, 0)
    Counters.put(ref, :echo_last_bytes, size)
    Counters.raise_max(ref, :echo_largest_read, largest)
    add(ref, :echo_completed, 1)
    reply(req, 200, "text/plain", Integer.to_string(size))
  end

  # Counts the body without keeping it: the handler asks for 64 KiB at a time and holds one
  # piece at a time.
  defp read_all(req, size, largest) do
    case Req.read_body(req, length: 65_536) do
      {:ok, data, req} -> {size + byte_size(data), max(largest, byte_size(data)), req}
      {:more, data, req} -> read_all(req, size + byte_size(data), max(largest, byte_size(data)))
      {:error, :closed} -> {size, largest, req}
    end
  end

  defp stats(req, state) do
    case :ets.lookup(state.table, {:server, state.transport}) do
      [{_, server}] ->
        stats = H2Flow.stats(server)
        wu = stats.window_update_frames

        body =
          stats
          |> Map.merge(H2Flow.Demo.counters(state))
          |> Map.merge(Map.take(state.settings, settings_keys()))
          |> Map.merge(%{
            transport: state.transport,
            window_updates_sent: wu.connection + wu.stream,
            slow_per_connection: H2Flow.Demo.slow_per_connection(state),
            per_connection: per_connection(server)
          })

        reply(req, 200, "application/json", H2Flow.Demo.JSON.encode!(body))

      [] ->
        reply(req, 503, "text/plain", "starting\n")
    end
  end

  @per_connection_keys [:streams_opened, :open_streams, :peak_open_streams] ++
                         [:data_bytes_received, :buffered_bytes, :peak_buffered_bytes] ++
                         [:connection_window, :connection_window_growths]

  # The HTTP/1.1 engine's bound on body bytes no read asked for (its :max_body_buffer, which the
  # demo leaves at its default): what the receive window is to an HTTP/2 connection.
  @http1_body_buffer 256 * 1024

  # The live connections' own stats. A connection that closes meanwhile is left out.
  defp per_connection(server) do
    for stats <- H2Flow.stats(server, :connections), stats.protocol != nil do
      connection_stats(stats)
    end
    |> Enum.sort_by(& &1.streams_opened, :desc)
  end

  defp connection_stats(%{protocol: :http2} = stats) do
    wu = stats.window_update_frames

    stats
    |> Map.take(@per_connection_keys)
    |> Map.merge(%{window_updates_sent: wu.connection + wu.stream, protocol: "h2"})
  end

  # HTTP/1.1 in the same terms: a request is a stream, the body bound is the window.
  defp connection_stats(%{protocol: :http1} = stats) do
    %{
      protocol: "http/1.1",
      streams_opened: stats.requests,
      open_streams: stats.pipelined,
      peak_open_streams: stats.peak_pipelined,
      data_bytes_received: stats.body_bytes_received,
      buffered_bytes: stats.buffered_bytes,
      peak_buffered_bytes: stats.peak_buffered_bytes,
      connection_window: @http1_body_buffer,
      connection_window_growths: 0,
      window_updates_sent: 0
    }
  end

  defp settings_keys do
    [:max_concurrent_streams, :initial_connection_window, :initial_stream_window] ++
      [:max_connection_window, :max_stream_window, :adaptive_window, :max_frame_size]
  end

  defp get_report(req, state) do
    kind = query_param(req, "kind", nil)

    case H2Flow.Demo.last_report(state, kind) do
      nil -> reply(req, 404, "application/json", ~s({"error":"no report yet"}))
      report -> reply(req, 200, "application/json", H2Flow.Demo.JSON.encode!(report))
    end
  end

  defp post_reset(req, state) do
    :ok = H2Flow.Demo.reset(state)
    Req.reply(204, req)
  end

  defp post_report(req, state) do
    with {:ok, body, req} <- read_limited(req, [], 0),
         {:ok, report} <- decode_report(body) do
      report =
        Map.merge(report, %{
          "received_at" => System.os_time(:millisecond),
          "transport" => Atom.to_string(state.transport),
          "server_peak_in_flight" => Counters.get(state.counters, :peak_in_flight)
        })

      :ets.insert(state.table, [{{:report, nil}, report}, {{:report, report["kind"]}, report}])
      add(state.counters, :reports, 1)
      reply(req, 204, "text/plain", "")
    else
      {:too_large, req} -> reply(req, 413, "text/plain", "report too large\n")
      {:error, :closed} -> req
      {:error, message} -> reply(req, 400, "text/plain", message <> "\n")
    end
  end

  defp read_limited(req, _acc, size) when size > @max_report_bytes, do: {:too_large, req}

  defp read_limited(req, acc, size) do
    case Req.read_body(req, length: @max_report_bytes + 1) do
      {:ok, data, req} when size + byte_size(data) <= @max_report_bytes ->
        {:ok, IO.iodata_to_binary([acc, data]), req}

      {:ok, _data, req} ->
        {:too_large, req}

      {:more, data, req} ->
        read_limited(req, [acc, data], size + byte_size(data))

      {:error, :closed} = error ->
        error
    end
  end

  defp decode_report(body) do
    pairs = body |> URI.query_decoder() |> Enum.take(@max_report_fields + 1)

    cond do
      length(pairs) > @max_report_fields ->
        {:error, "too many fields"}

      not Enum.all?(pairs, fn {k, v} -> String.valid?(k) and String.valid?(v) end) ->
        {:error, "not UTF-8"}

      true ->
        {:ok, Map.new(pairs, fn {k, v} -> {k, typed(v)} end)}
    end
  end

  defp typed("true"), do: true
  defp typed("false"), do: false

  defp typed(value) do
    case Integer.parse(value) do
      {n, ""} ->
        n

      _ ->
        case Float.parse(value) do
          {f, ""} -> f
          _ -> value
        end
    end
  end

  defp not_allowed(req, allow) do
    Req.reply(
      405,
      %{"allow" => allow, "content-type" => "text/plain"},
      "method not allowed\n",
      req
    )
  end

  defp reply(req, status, type, body) do
    Req.reply(status, %{"content-type" => type, "cache-control" => "no-store"}, body, req)
  end

  defp query_param(req, name, default) do
    case List.keyfind(Req.parse_qs(req), name, 0) do
      {_, value} -> value
      nil -> default
    end
  end

  defp parse_int(value, default) do
    case Integer.parse(value) do
      {n, ""} -> n
      _ -> default
    end
  end

  defp add(ref, name, n), do: Counters.add(ref, name, n)
  defp raise_peak(ref, value), do: Counters.raise_max(ref, :peak_in_flight, value)
end
