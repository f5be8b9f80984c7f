defmodule H2Flow.ServerLifecycleTest do
  # Connections and streams ending: timeouts, peer resets, a peer that goes away or says
  # GOAWAY; handler processes stopped and counted.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  # Streams 1 KiB pieces until the stream is gone; `/quick` answers at once.
  defp streamer(test) do
    fn req ->
      case Req.path(req) do
        "/quick" ->
          Req.reply(200, %{}, "quick", req)

        _ ->
          req = Req.stream_reply(200, req)
          send(test, {:streaming, self(), Req.stream_id(req)})
          stream_forever(req)
      end
    end
  end

  defp stream_forever(req) do
    case Req.stream_body(:binary.copy("z", 1024), :nofin, req) do
      :ok -> stream_forever(req)
      {:error, :closed} -> req
    end
  end

  defp await_streaming(n) do
    for _ <- 1..n do
      assert_receive {:streaming, pid, id}, 5_000
      {id, pid}
    end
  end

  # Reads until every stream in `ids` has sent DATA.
  defp await_data(conn, ids) do
    seen = for {:data, _flags, id, _} <- H2Client.frames(conn), into: MapSet.new(), do: id

    if Enum.all?(ids, &(&1 in seen)) do
      conn
    else
      {:ok, conn, _frame} = H2Client.recv_frame(conn)
      await_data(conn, ids)
    end
  end

  describe "peer resets" do
    test "streams reset while their handlers stream: handlers stopped, counters right, the " <>
           "connection carries on" do
      test = self()
      {server, port} = start_server!(streamer(test))
      # Stream windows of 4 KiB hold each handler back (they block, they do not flood) and
      # leave every stream its share of the connection window (65,535).
      conn = connect!(port, initial_window_size: 4096)

      {ids, conn} =
        Enum.map_reduce(1..10, conn, fn _, conn ->
          {:ok, conn, id} = H2Client.request(conn, "GET", "/stream")
          {id, conn}
        end)

      streaming = await_streaming(10)
      connection = connection!(server)
      assert length(handlers(connection)) == 10
      refs = for {_id, pid} <- streaming, do: {monitor!(pid), pid}
      conn = await_data(conn, ids)

      for id <- ids, do: :ok = H2Client.send_rst_stream(conn, id, :cancel)

      for {ref, pid} <- refs, do: assert_receive({:DOWN, ^ref, :process, ^pid, :killed}, 5_000)
      assert handlers(connection) == []

      # The reset streams used up the connection's send window: give some back.
      :ok = H2Client.send_window_update(conn, 0, 65_535)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/quick")
      assert {:ok, _conn, %{status: 200, body: "quick"}} = H2Client.read_response(conn, id)
      assert [^connection] = connections(server)

      assert %{
               streams_reset_by_peer: 10,
               handlers_started: 11,
               handlers_stopped: 10,
               handler_crashes: 0,
               open_streams: 0,
               queued_send_bytes: 0
             } = H2Flow.stats(server)
    end

    test "a reset of a stream whose handler is done only discards its queued response" do
      {server, port} =
        start_server!(fn req -> Req.reply(200, %{}, :binary.copy("q", 100_000), req) end)

      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      # The default windows (65,535) hold the rest back until the reset.
      eventually(fn -> stat(server, :queued_send_bytes) == 100_000 - 65_535 end)
      # The handler has returned (it could be preempted between its reply and its exit).
      eventually(fn -> handlers(connection!(server)) == [] end)
      :ok = H2Client.send_rst_stream(conn, id, :cancel)
      eventually(fn -> stat(server, :queued_send_bytes) == 0 end)

      assert %{handlers_stopped: 0, handler_crashes: 0, streams_reset_by_peer: 1} =
               H2Flow.stats(server)

      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      :ok = H2Client.send_window_update(conn, 0, 1_000_000)
      :ok = H2Client.send_window_update(conn, id, 1_000_000)
      assert {:ok, _, %{status: 200, body: body}} = H2Client.read_response(conn, id)
      assert byte_size(body) == 100_000
    end
  end

  describe "handler resets" do
    # Both sides had ended the stream (the body all arrived, unread; the response sent) when
    # the handler reset it: its unread bytes stayed counted, and unread, for ever.
    test "a reset after the response releases the body the handler did not read" do
      test = self()

      {server, port} =
        start_server!(fn req ->
          send(test, {:started, self()})
          receive do: (:reply -> :ok)
          Req.reply(200, %{}, "unread", req)
          receive do: (:reset -> :ok)
          :ok = Req.reset(req)
          send(test, :reset)
          receive do: (:done -> req)
        end)

      conn = connect!(port)
      id = 1

      :ok =
        H2Client.send_headers(
          conn,
          id,
          [
            {":method", "POST"},
            {":scheme", "http"},
            {":authority", "localhost"},
            {":path", "/"}
          ],
          false
        )

      assert_receive {:started, handler}, 5_000
      :ok = H2Client.send_data(conn, id, :binary.copy("u", 10_000), true)
      eventually(fn -> stat(server, :buffered_bytes) == 10_000 end)
      send(handler, :reply)
      assert {:ok, _conn, %{status: 200, body: "unread"}} = H2Client.read_response(conn, id)
      send(handler, :reset)
      assert_receive :reset, 5_000
      # Released while the handler still runs (not only when it exits).
      eventually(fn -> stat(server, :buffered_bytes) == 0 end)
      assert Process.alive?(handler)
      send(handler, :done)
    end
  end

  describe "the peer goes away" do
    # A peer that disconnects with streams running: see ServerResourcesTest, which counts the
    # processes left.

    test "GOAWAY from the peer: in-flight streams complete, then the connection closes" do
      test = self()

      {server, port} =
        start_server!(fn req ->
          wait_for_go(test, req)
          Req.reply(200, %{}, "finished", req)
        end)

      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      [{pid, _}] = waiting(1)
      :ok = H2Client.send_goaway(conn, 0, :no_error)
      {conn, _} = sync!(conn)
      send(pid, :go)
      assert {:ok, conn, %{status: 200, body: "finished"}} = H2Client.read_response(conn, id)
      assert {:error, _, :closed} = H2Client.recv(conn)
      eventually(fn -> stat(server, :connections_closed) == 1 end)
    end
  end

  describe "timeouts" do
    test "preface: a client that sends nothing, or half a preface, is disconnected" do
      {server, port} = start_server!(& &1, preface_timeout: 100)

      for bytes <- ["", "PRI * HTTP/2.0\r\n"] do
        {:ok, conn} = H2Client.connect("127.0.0.1", port)
        if bytes != "", do: :ok = H2Client.send_raw(conn, bytes)
        assert {:error, _, :closed} = recv_until_closed(conn)
      end

      eventually(fn -> stat(server, :connections_closed) == 2 end)
    end

    test "SETTINGS not acknowledged in time: GOAWAY SETTINGS_TIMEOUT" do
      {_server, port} = start_server!(& &1, settings_timeout: 100)
      {:ok, conn} = H2Client.connect("127.0.0.1", port, auto_ack: [])
      :ok = H2Client.send_preface(conn)
      {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:goaway, _, _, _}, &1), 5_000)
      assert {:goaway, 0, :settings_timeout, _} = List.last(frames)
      assert {:error, _, :closed} = H2Client.recv(conn)
    end

    test "idle: GOAWAY NO_ERROR once no stream is open and nothing came for :idle_timeout" do
      test = self()

      {_server, port} =
        start_server!(
          fn req ->
            wait_for_go(test, req)
            Req.reply(200, req)
          end,
          idle_timeout: 300
        )

      # The request goes with the preface: no idle moment before it.
      {:ok, conn} = H2Client.connect("127.0.0.1", port)
      :ok = H2Client.send_preface(conn)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      [{pid, _}] = waiting(1)
      # An open stream keeps the connection, however long its handler takes.
      refute_receive _, 1_000
      send(pid, :go)
      assert {:ok, conn, %{status: 200}} = H2Client.read_response(conn, id)

      {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:goaway, _, _, _}, &1), 5_000)
      assert {:goaway, 1, :no_error, "idle"} = List.last(frames)
      assert {:error, _, :closed} = H2Client.recv(conn)
    end
  end

  defp recv_until_closed(conn) do
    case H2Client.recv_frame(conn, 5_000) do
      {:ok, conn, _frame} -> recv_until_closed(conn)
      error -> error
    end
  end
end
