defmodule H2Flow.ClientErrorsTest do
  # What servers do to a client's requests mid-flight — resets, GOAWAY, broken responses,
  # PUSH_PROMISE, a closed socket — gives those requests `{:error, ...}`, never a crash: against
  # h2flow's server, and against a scripted server writing raw frames (H2Flow.Test.RawServer).
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers, only: [eventually: 1]

  alias H2Flow.Client
  alias H2Flow.Test.{ClientHandler, H2Client, RawServer}

  @moduletag timeout: 60_000
  # Handlers that crash on purpose log it.
  @moduletag :capture_log

  defp request_async(client, path, method \\ "GET"),
    do: Task.async(fn -> Client.request(client, method, path) end)

  test "resets from h2flow's server: by the handler, and after a crash" do
    client = H2Flow.Test.client!(handler: ClientHandler)
    assert {:error, {:stream_reset, :cancel}} = Client.request(client, "GET", "/reset/cancel")
    assert {:error, {:stream_reset, :internal_error}} = Client.request(client, "GET", "/crash")

    {:ok, resp} = Client.stream(client, "GET", "/crash")
    assert {:error, {:stream_reset, :internal_error}} = read_until_error(resp)
    assert {:ok, %{status: 200}} = Client.request(client, "GET", "/sleep/0")
  end

  defp read_until_error(resp) do
    case Client.read_body(resp) do
      {:more, _, resp} -> read_until_error(resp)
      other -> other
    end
  end

  test "h2flow's server stopping: requests in flight finish, later ones are refused" do
    server = H2Flow.Test.server!(handler: ClientHandler, shutdown_timeout: 5_000)
    client = H2Flow.Test.connect!(server)
    ref = Process.monitor(GenServer.whereis(client))
    tasks = for _ <- 1..10, do: request_async(client, "/sleep/300")
    eventually(fn -> H2Flow.stats(server).open_streams == 10 end)
    stopping = Task.async(fn -> H2Flow.stop(server) end)
    assert Enum.all?(Enum.map(tasks, &Task.await/1), &match?({:ok, %{status: 200}}, &1))
    Task.await(stopping)
    assert_receive {:DOWN, ^ref, _, _, {:shutdown, _}}, 5_000
    assert {:error, :closed} = Client.request(client, "GET", "/sleep/0")
  end

  test "a GOAWAY fails the requests it did not process, and lets the others finish" do
    url = RawServer.start()
    {:ok, client} = Client.connect(url)
    conn = RawServer.accept!()
    # One at a time, so that each task's stream is known (tasks started together reach the
    # client in any order).
    one = request_async(client, "/")
    {conn, 1, _} = RawServer.next_request!(conn)
    three = request_async(client, "/")
    {conn, 3, _} = RawServer.next_request!(conn)
    five = request_async(client, "/")
    {conn, 5, _} = RawServer.next_request!(conn)
    :ok = H2Client.send_goaway(conn, 1, :no_error, "maintenance")
    assert {:error, {:goaway, :no_error}} = Task.await(three)
    assert {:error, {:goaway, :no_error}} = Task.await(five)
    # New requests are refused at once; stream 1 still completes.
    assert {:error, {:goaway, :no_error}} = Client.request(client, "GET", "/")
    :ok = H2Client.send_headers(conn, 1, [{":status", "200"}], false)
    :ok = H2Client.send_data(conn, 1, "done", true)
    assert {:ok, %{status: 200, body: "done"}} = Task.await(one)
    # Nothing open: the client closes the connection.
    assert {:error, _, :closed} = H2Client.recv_until(conn, fn _ -> false end)
  end

  test "requests wait for the server's SETTINGS_MAX_CONCURRENT_STREAMS" do
    url = RawServer.start([{3, 2}])
    {:ok, client} = Client.connect(url)
    conn = RawServer.accept!()
    tasks = for _ <- 1..4, do: request_async(client, "/")
    {conn, 1, _} = RawServer.next_request!(conn)
    {conn, 3, _} = RawServer.next_request!(conn)
    # Two streams open: the other requests wait in the client. Everything it wrote before it
    # answers a PING is read: no third HEADERS.
    eventually(fn -> Client.stats(client).queued_requests == 2 end)
    :ok = H2Client.send_ping(conn, "12345678")
    {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:ping, true, _}, &1))
    refute Enum.any?(frames, &match?({:headers, _, _, _}, &1))
    :ok = H2Client.send_headers(conn, 1, [{":status", "204"}], true)
    {conn, 5, _} = RawServer.next_request!(conn)
    :ok = H2Client.send_headers(conn, 3, [{":status", "204"}], true)
    :ok = H2Client.send_headers(conn, 5, [{":status", "204"}], true)
    {conn, 7, _} = RawServer.next_request!(conn)
    :ok = H2Client.send_headers(conn, 7, [{":status", "204"}], true)
    assert Enum.all?(Enum.map(tasks, &Task.await/1), &match?({:ok, %{status: 204}}, &1))
    H2Client.close(conn)
  end

  test "a malformed response fails its request only" do
    url = RawServer.start()
    {:ok, client} = Client.connect(url)
    conn = RawServer.accept!()
    bad = request_async(client, "/bad")
    {conn, 1, _} = RawServer.next_request!(conn)
    good = request_async(client, "/good")
    {conn, 3, _} = RawServer.next_request!(conn)
    # DATA before HEADERS (RFC 9113 8.1), then a response without :status.
    :ok = H2Client.send_data(conn, 1, "x", true)

    assert {:error, {:stream_error, :protocol_error, "DATA before the response HEADERS" <> _}} =
             Task.await(bad)

    {:ok, conn, [{:rst_stream, 1, :protocol_error}]} =
      H2Client.recv_until(conn, &match?({:rst_stream, _, _}, &1))

    :ok = H2Client.send_headers(conn, 3, [{":status", "200"}, {"content-length", "2"}], false)
    :ok = H2Client.send_data(conn, 3, "ok", true)
    assert {:ok, %{status: 200, body: "ok"}} = Task.await(good)
    H2Client.close(conn)
  end

  test "resets, and a server that closes mid-response" do
    url = RawServer.start()
    {:ok, client} = Client.connect(url)
    ref = Process.monitor(client)
    conn = RawServer.accept!()
    refused = request_async(client, "/")
    {conn, 1, _} = RawServer.next_request!(conn)
    :ok = H2Client.send_rst_stream(conn, 1, :refused_stream)
    assert {:error, {:stream_reset, :refused_stream}} = Task.await(refused)

    test = self()

    reader =
      Task.async(fn ->
        {:ok, resp} = Client.stream(client, "GET", "/")
        {:more, "part", resp} = Client.read_body(resp)
        send(test, :read_part)
        Client.read_body(resp)
      end)

    {conn, 3, _} = RawServer.next_request!(conn)
    :ok = H2Client.send_headers(conn, 3, [{":status", "200"}], false)
    :ok = H2Client.send_data(conn, 3, "part", false)
    assert_receive :read_part, 5_000
    pending = request_async(client, "/")
    {conn, 5, _} = RawServer.next_request!(conn)
    H2Client.close(conn)
    assert {:error, :closed} = Task.await(pending)
    assert {:error, :closed} = Task.await(reader)
    assert_receive {:DOWN, ^ref, _, _, {:shutdown, :closed}}, 5_000
  end

  test "PUSH_PROMISE and other connection errors fail every request, no crash" do
    url = RawServer.start()
    {:ok, client} = Client.connect(url)
    ref = Process.monitor(client)
    conn = RawServer.accept!()
    tasks = for _ <- 1..2, do: request_async(client, "/")
    {conn, 1, _} = RawServer.next_request!(conn)
    {conn, 3, _} = RawServer.next_request!(conn)
    block = H2Client.HPACK.encode_literal_block([{":method", "GET"}, {":path", "/pushed"}])
    :ok = H2Client.send_frame(conn, :push_promise, 0x4, 1, [<<2::32>>, block])

    for task <- tasks do
      assert {:error, {:connection_error, :protocol_error, "PUSH_PROMISE" <> _}} =
               Task.await(task)
    end

    {:ok, _conn, frames} = H2Client.recv_until(conn, &match?({:goaway, _, _, _}, &1))
    assert {:goaway, 0, :protocol_error, _} = List.last(frames)

    assert_receive {:DOWN, ^ref, _, _, {:shutdown, {:connection_error, :protocol_error, _}}},
                   5_000
  end
end
