defmodule H2Flow.ServerReadsTest do
  # Found in review of the engine-owned receive path, each over a real socket: handlers that
  # waited for ever (a sender woken by nobody when a reset freed the connection's queue, a
  # reader whose stream the engine reset), body bytes lost to a handler's own receive or given
  # twice, and unread bytes pinning whole socket reads.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @kib 1024
  @post [{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}]

  defp stream_forever(req, chunk) do
    case Req.stream_body(chunk, :nofin, req) do
      :ok -> stream_forever(req, chunk)
      error -> error
    end
  end

  test "a sender waiting on the connection's send queue goes on when a reset frees it" do
    test = self()

    {_server, port} =
      start_server!(
        fn req ->
          req = Req.stream_reply(200, req)
          send(test, {:started, Req.stream_id(req)})

          send(
            test,
            {:stream_body, Req.stream_id(req), stream_forever(req, :binary.copy("x", 64 * @kib))}
          )

          req
        end,
        max_connection_send_queue: 64 * @kib
      )

    conn = connect!(port, initial_window_size: 0)
    # Stream 1 fills the connection's queue; stream 3's sender waits with nothing queued.
    {:ok, conn, 1} = H2Client.request(conn, "GET", "/a")
    assert_receive {:started, 1}, 5_000
    {conn, _} = sync!(conn)
    {:ok, conn, 3} = H2Client.request(conn, "GET", "/b")
    assert_receive {:started, 3}, 5_000
    {conn, _} = sync!(conn)
    :ok = H2Client.send_rst_stream(conn, 1, :cancel)
    :ok = H2Client.send_window_update(conn, 3, 1_000_000)
    :ok = H2Client.send_window_update(conn, 0, 1_000_000)
    assert {:ok, _, _} = H2Client.recv_until(conn, &match?({:data, 3, _, _}, &1), 10_000)
  end

  test "a read waiting on a stream the engine resets for a send stall gets {:error, :closed}" do
    test = self()

    {_server, port} =
      start_server!(
        fn req ->
          case Req.path(req) do
            "/upload" ->
              # Part of the reply waits for a window the client never opens.
              req = Req.reply(200, %{}, :binary.copy("r", 200 * @kib), req)
              send(test, {:reading, self()})
              send(test, {:read, Req.read_body(req, period: 60_000)})
              req

            _ ->
              Req.reply(200, %{}, :binary.copy("f", 10 * @kib), req)
          end
        end,
        send_stall_timeout: 1_000
      )

    conn = connect!(port, initial_window_size: 0)
    upload = List.keyreplace(@post, ":path", 0, {":path", "/upload"})
    :ok = H2Client.send_headers(conn, 1, upload, false)
    :ok = H2Client.send_data(conn, 1, "partial", false)
    conn = %{conn | next_stream_id: 3}
    assert_receive {:reading, _handler}, 5_000

    # Other streams keep the connection sending (a connection that sends nothing at all for
    # send_stall_timeout is closed instead), so only stream 1 is reset.
    assert {:error, :closed} = keep_sending_until_read(conn, 1, 100)
  end

  defp keep_sending_until_read(_conn, i, max) when i > max, do: flunk("no read result")

  defp keep_sending_until_read(conn, i, max) do
    {:ok, conn, id} = H2Client.request(conn, "GET", "/f#{i}")
    :ok = H2Client.send_window_update(conn, id, 20 * @kib)
    :ok = H2Client.send_window_update(conn, 0, 20 * @kib)
    {conn, _} = sync!(conn)

    receive do
      {:read, result} -> result
    after
      200 -> keep_sending_until_read(conn, i + 1, max)
    end
  end

  test "a handler that receives its own messages before read_body loses no body bytes" do
    test = self()

    {_server, port} =
      start_server!(fn req ->
        send(test, {:waiting, self()})
        # A catch-all receive: it takes whatever is in the mailbox until :go.
        taken = drain([])
        send(test, {:read, taken, Req.read_body(req, period: 5_000)})
        Req.reply(200, req)
      end)

    conn = connect!(port)
    :ok = H2Client.send_headers(conn, 1, @post, false)
    assert_receive {:waiting, handler}, 5_000
    :ok = H2Client.send_data(conn, 1, "hello ", false)
    {conn, _} = sync!(conn)
    send(handler, :go)
    :ok = H2Client.send_data(conn, 1, "world", true)
    assert_receive {:read, [], {:ok, "hello world", _}}, 5_000
  end

  defp drain(acc) do
    receive do
      :go -> Enum.reverse(acc)
      other -> drain([other | acc])
    end
  end

  test "read_body with a request already read gives \"\", not the body again" do
    test = self()

    {_server, port} =
      start_server!(fn req ->
        {:ok, body, _read} = Req.read_body(req)
        # As a Cowboy handler may: the original request again.
        send(test, {:reads, body, Req.read_body(req)})
        Req.reply(200, req)
      end)

    conn = connect!(port)
    {:ok, _conn, 1} = H2Client.request(conn, "POST", "/", [], "whole")
    assert_receive {:reads, "whole", {:ok, "", _}}, 5_000
  end

  # Four handlers that do not read; each DATA frame of 16 KiB followed by fifteen 16 KiB frames
  # of an unknown type (ignored, not flow-controlled): 1 MiB buffered must not keep every
  # socket read it came in alive (each unread piece pinned up to a 256 KiB read: 14.8 MiB).
  test "unread body bytes pin at most four times their size in socket reads" do
    test = self()

    {server, port} =
      start_server!(fn req ->
        send(test, {:started, self()})
        receive(do: (:go -> Req.reply(200, req)))
      end)

    conn = connect!(port)
    for id <- [1, 3, 5, 7], do: :ok = H2Client.send_headers(conn, id, @post, false)
    d = :binary.copy("d", 16 * @kib)
    u = :binary.copy("u", 16 * @kib)

    frames =
      for _ <- 1..16, id <- [1, 3, 5, 7] do
        [
          H2Client.encode_frame(:data, 0, id, d),
          for(_ <- 1..15, do: H2Client.encode_frame(0xF0, 0, 0, u))
        ]
      end

    :ok = H2Client.send_raw(conn, frames)
    {_conn, _} = sync!(conn, 20_000)
    eventually(fn -> stat(server, :buffered_bytes) == 1024 * @kib end, 10_000)
    [connection] = connections(server)
    pids = [connection | handlers(connection)]
    for pid <- pids, do: :erlang.garbage_collect(pid)

    pinned =
      pids
      |> Enum.flat_map(fn p -> elem(Process.info(p, :binary), 1) end)
      |> Enum.uniq_by(&elem(&1, 0))
      |> Enum.map(&elem(&1, 1))
      |> Enum.sum()

    IO.puts(
      "1 MiB unread, interleaved with 15 MiB of ignored frames: #{div(pinned, @kib)} KiB of binaries held"
    )

    assert pinned <= 4 * 1024 * @kib

    for _ <- 1..4 do
      assert_receive {:started, pid}, 5_000
      send(pid, :go)
    end
  end
end
