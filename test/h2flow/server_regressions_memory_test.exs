defmodule H2Flow.ServerRegressionsMemoryTest do
  # Zero-window peers (issue 14), measured: the VM's peak RSS while 20 of them hold their
  # streams open. Not async: the measure is of the whole VM, which other tests' bodies would
  # inflate.
  use ExUnit.Case, async: false

  import H2Flow.Test.ServerHelpers
  import H2Flow.Test.AttackHelpers, only: [measure: 1, read_to_close: 2]

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @kib 1024
  @mib 1024 * 1024

  # 100 streams to large responses, SETTINGS_INITIAL_WINDOW_SIZE 0 and never a WINDOW_UPDATE:
  # each connection held 7 to 11 MB for ever. Now the connection's send queue is bounded, and
  # streams that cannot send are reset after :send_stall_timeout (30 s by default), which
  # closes a connection on which nothing could be sent.
  @tag timeout: 120_000
  test "zero-window peers: bounded memory per connection, all closed within 60 s by default" do
    chunk = :binary.copy("z", 64 * @kib)
    test = self()

    {server, port} =
      start_server!(fn req ->
        req = Req.stream_reply(200, req)
        send(test, {:stream_body, Req.stream_id(req), stream_forever(req, chunk)})
        req
      end)

    n = 20
    started = System.monotonic_time(:millisecond)

    {conns, mem} =
      measure(fn ->
        conns =
          for _ <- 1..n do
            conn = connect!(port, initial_window_size: 0)

            Enum.reduce(1..100, conn, fn _, conn ->
              {:ok, conn, _id} = H2Client.request(conn, "GET", "/big")
              conn
            end)
          end

        eventually(
          fn -> stat(server, :queued_send_bytes) >= n * 1 * @mib - n * 64 * @kib end,
          20_000
        )

        conns
      end)

    per_connection = mem.peak_rss / n

    IO.puts(
      "zero-window peers: #{Float.round(per_connection / @mib, 2)} MiB per connection at the peak (RSS), #{stat(server, :queued_send_bytes)} bytes queued"
    )

    assert per_connection <= 3 * @mib

    for conn <- conns do
      frames = read_to_close(conn, 60_000)
      assert {:goaway, _, :no_error, _} = List.keyfind(frames, :goaway, 0)
    end

    elapsed = System.monotonic_time(:millisecond) - started
    IO.puts("zero-window peers: all #{n} connections closed after #{elapsed} ms")
    assert elapsed < 60_000
    # The connections are gone, and their handlers with them. Of each connection's streams,
    # those with bytes queued (16 × 64 KiB fill the connection's 1 MiB) were reset for the
    # stall; the others' handlers waited for room in the queue, and went with the connection.
    eventually(fn -> connections(server) == [] end)
    # Each connection resets at least one stream for the stall; all 16 unless a tick falls
    # between their deadlines (their clocks started as each was queued) and the connection,
    # on which nothing could be sent either, closes with the rest.
    assert stat(server, :send_timeouts) in n..(n * 16)
    assert stat(server, :defences_triggered) == 0
  end

  defp stream_forever(req, chunk) do
    case Req.stream_body(chunk, :nofin, req) do
      :ok -> stream_forever(req, chunk)
      error -> error
    end
  end
end
