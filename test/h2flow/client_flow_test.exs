defmodule H2Flow.ClientFlowTest do
  # The client's flow control and limits over real sockets, against h2flow's server: the
  # server's concurrency limit honoured by queueing, a caller that stops reading a 1 GiB
  # download (memory bounded by the window), uploads paced by the server's windows, timeouts,
  # :max_body, callers that die or cancel.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers, only: [eventually: 1, eventually: 2, wait_for_go: 2]

  alias H2Flow.Client
  alias H2Flow.Test.{ClientHandler, ClientHelpers, FunHandler}

  @moduletag timeout: 120_000

  defp client_pid(client), do: GenServer.whereis(client)

  test "1,000 concurrent requests on one connection against a limit of 100" do
    server = H2Flow.Test.server!(handler: ClientHandler, max_concurrent_streams: 100)
    client = H2Flow.Test.connect!(server)

    tasks =
      for _ <- 1..1_000, do: Task.async(fn -> Client.request(client, "GET", "/sleep/20") end)

    results = Enum.map(tasks, &Task.await(&1, 60_000))

    assert Enum.all?(results, &match?({:ok, %{status: 200, body: "slept"}}, &1))
    stats = H2Flow.stats(server)
    assert stats.streams_refused == 0, "a request went out beyond the server's limit"
    # The client never had more than 100 open; the server saw at most that many at once (fewer
    # if the first answers came before the 100th request's HEADERS).
    assert stats.peak_open_streams in 1..100
    assert stats.streams_opened == 1_000
    c = Client.stats(client)
    assert c.requests_queued >= 800, "most requests waited in the client: #{c.requests_queued}"
    assert c.peak_open_streams == 100
    assert c.queued_requests == 0
  end

  test "the client's own :max_concurrent_streams, below the server's" do
    server = H2Flow.Test.server!(handler: ClientHandler)
    client = H2Flow.Test.connect!(server, max_concurrent_streams: 3)
    tasks = for _ <- 1..30, do: Task.async(fn -> Client.request(client, "GET", "/sleep/10") end)
    assert Enum.all?(Enum.map(tasks, &Task.await/1), &match?({:ok, %{status: 200}}, &1))
    assert H2Flow.stats(server).peak_open_streams in 1..3
    assert Client.stats(client).peak_open_streams == 3
  end

  test "a caller that stops reading a 1 GiB download holds at most the stream window" do
    window = 1_048_576
    server = H2Flow.Test.server!(handler: ClientHandler)

    client =
      H2Flow.Test.connect!(server, initial_stream_window: window, max_stream_window: window)

    pid = client_pid(client)
    {:ok, resp} = Client.stream(client, "GET", "/bytes/#{1024 * 1024 * 1024}")

    # Not read yet: the server sends the window, then its handler blocks (its queue full).
    eventually(fn -> Client.stats(client).buffered_bytes == window end)
    eventually(fn -> H2Flow.stats(server).queued_send_bytes > 0 end)
    assert_bounded(client, pid, window, 0)

    # Each read hands over what is there and credits it (read_body/2 returns it one socket
    # read at a time: the rest is pending in the response); the server sends as much again,
    # and no more while the caller does not read.
    resp =
      Enum.reduce(1..3, resp, fn round, resp ->
        {:more, data, resp} = Client.read_body(resp)
        {data, resp} = take_pending(data, resp)
        assert byte_size(data) == window
        eventually(fn -> Client.stats(client).buffered_bytes == window end)
        assert_bounded(client, pid, window, round)
        resp
      end)

    :ok = Client.cancel(resp)
    eventually(fn -> H2Flow.stats(server).open_streams == 0 end)
    assert Client.stats(client).buffered_bytes == 0
    assert {:ok, %{status: 200}} = Client.request(client, "GET", "/sleep/0")
  end

  test "a streamed body comes one socket read at a time, each piece its own binary" do
    server = H2Flow.Test.server!(handler: ClientHandler)
    client = H2Flow.Test.connect!(server)
    size = 8 * 1024 * 1024
    {:ok, resp} = Client.stream(client, "GET", "/bytes/#{size}")

    pieces =
      Stream.unfold(resp, fn
        nil ->
          nil

        resp ->
          case Client.read_body(resp) do
            {:more, piece, resp} -> {piece, resp}
            {:ok, piece, _resp} -> {piece, nil}
          end
      end)
      |> Enum.to_list()

    assert pieces |> Enum.map(&byte_size/1) |> Enum.sum() == size
    # No piece is larger than a read, and none keeps more than four times its size alive. Only
    # the last may be empty: the handler ends with an empty DATA frame carrying END_STREAM,
    # which can arrive in a read of its own.
    {last, pieces} = List.pop_at(pieces, -1)
    pieces = if last == "", do: pieces, else: pieces ++ [last]
    assert Enum.all?(pieces, &(byte_size(&1) in 1..262_144))
    assert Enum.all?(pieces, &(:binary.referenced_byte_size(&1) <= 4 * byte_size(&1)))
  end

  defp take_pending(data, %{pending: []} = resp), do: {data, resp}

  defp take_pending(data, resp) do
    {:more, piece, resp} = Client.read_body(resp)
    take_pending(data <> piece, resp)
  end

  defp assert_bounded(client, pid, window, reads) do
    stats = Client.stats(client)
    assert stats.data_bytes_received == (reads + 1) * window
    assert stats.window_update_frames.stream == reads, "credit only for what was read"
    # The connection process holds what arrived, not more: the DATA payloads (which may keep
    # the socket reads they came in alive: at most one more read buffer at each end).
    :erlang.garbage_collect(pid)
    {:binary, bins} = Process.info(pid, :binary)
    held = bins |> Enum.uniq_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1)) |> Enum.sum()
    assert held <= 2 * window, "#{held} bytes of binaries held for a #{window}-byte window"
    {:memory, memory} = Process.info(pid, :memory)
    assert memory <= window
  end

  test "an upload from an enumerable is pulled only as the server's windows let it go" do
    test = self()

    server =
      H2Flow.Test.server!(
        handler: FunHandler,
        handler_opts: fn req ->
          wait_for_go(test, req)
          {size, _hash, req} = ClientHelpers.hash_body(req)
          H2Flow.Req.reply(200, %{}, "#{size}", req)
        end
      )

    client = H2Flow.Test.connect!(server)
    counter = :counters.new(1, [])
    piece = :binary.copy("u", 65_536)

    pieces =
      Stream.repeatedly(fn ->
        :counters.add(counter, 1, 1)
        piece
      end)
      |> Stream.take(200)

    task = Task.async(fn -> Client.request(client, "POST", "/", [], pieces) end)
    assert_receive {:waiting, handler, _req}, 5_000
    # The server's stream window (256 KiB) went out, the engine's queue (64 KiB) is full: the
    # caller waits, with the next piece in hand.
    eventually(fn -> Client.stats(client).queued_send_bytes == 65_536 end)
    assert Client.stats(client).data_bytes_sent == 262_144
    assert :counters.get(counter, 1) * 65_536 == 262_144 + 65_536 + 65_536
    send(handler, :go)
    assert {:ok, %{status: 200, body: "13107200"}} = Task.await(task)
  end

  test "a timeout cancels the request; the connection carries on" do
    server = H2Flow.Test.server!(handler: ClientHandler)
    client = H2Flow.Test.connect!(server)

    assert {:error, :timeout} =
             Client.request(client, "GET", "/sleep/5000", [], nil, timeout: 100)

    eventually(fn -> H2Flow.stats(server).streams_reset_by_peer == 1 end)
    assert {:ok, %{status: 200}} = Client.request(client, "GET", "/sleep/0")

    {:ok, resp} = Client.stream(client, "GET", "/sleep/0")
    assert {:ok, "slept", _} = Client.read_body(resp, timeout: 5_000)
  end

  test ":max_body bounds a whole response" do
    client = H2Flow.Test.client!(handler: ClientHandler)

    assert {:error, {:body_too_large, 1_000}} =
             Client.request(client, "GET", "/bytes/100000", [], nil, max_body: 1_000)

    assert {:ok, %{body: body}} =
             Client.request(client, "GET", "/bytes/1000", [], nil, max_body: 1_000)

    assert byte_size(body) == 1_000
    assert Client.stats(client).buffered_bytes == 0
  end

  test "a caller that exits cancels its requests" do
    server = H2Flow.Test.server!(handler: ClientHandler)
    client = H2Flow.Test.connect!(server)

    {pid, mon} =
      spawn_monitor(fn ->
        {:ok, _resp} = Client.stream(client, "GET", "/bytes/100000000")
        Process.sleep(:infinity)
      end)

    eventually(fn -> H2Flow.stats(server).queued_send_bytes > 0 end)
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^mon, _, _, :killed}
    eventually(fn -> H2Flow.stats(server).open_streams == 0 end)
    eventually(fn -> Client.stats(client).open_streams == 0 end)
    assert Client.stats(client).buffered_bytes == 0
  end

  test "the connection closes when its owner exits" do
    server = H2Flow.Test.server!(handler: ClientHandler)
    test = self()

    {owner, mon} =
      spawn_monitor(fn ->
        {:ok, client} = Client.connect(H2Flow.Test.url(server))
        send(test, {:client, client})
      end)

    assert_receive {:client, client}, 5_000
    assert_receive {:DOWN, ^mon, _, ^owner, :normal}, 5_000
    ref = Process.monitor(client)
    assert_receive {:DOWN, ^ref, _, _, _}, 5_000
    eventually(fn -> H2Flow.stats(server).connections == 0 end, 5_000)
  end
end
