defmodule H2Flow.SchedulerTest do
  use ExUnit.Case, async: true

  alias H2Flow.Scheduler

  doctest H2Flow.Scheduler

  defp new(opts \\ []) do
    {:ok, s} =
      Scheduler.new(
        Keyword.merge([initial_connection_window: 65_535, initial_stream_window: 65_535], opts)
      )

    s
  end

  describe "new/1" do
    test "unknown options and bad values raise" do
      assert_raise ArgumentError, ~r/unknown scheduler option :window/, fn ->
        Scheduler.new(window: 1)
      end

      assert_raise ArgumentError, fn -> Scheduler.new(initial_stream_window: -1) end
      assert_raise ArgumentError, fn -> Scheduler.new(initial_stream_window: 2_147_483_648) end

      for bad <- [0, 101, 300] do
        assert_raise ArgumentError, ~r/1\.\.100/, fn ->
          Scheduler.new(window_update_threshold: bad)
        end
      end
    end

    test "the initial credit raises the connection window once" do
      s = new(initial_connection_window: 1_048_576)
      assert Scheduler.initial_credit(s) == 1_048_576 - 65_535
      assert Scheduler.initial_credit(s) == 0
      assert %{connection_window: 1_048_576, connection_remaining: 1_048_576} = Scheduler.info(s)
      assert Scheduler.initial_credit(new()) == 0
    end
  end

  describe "thresholds" do
    test "credit goes out at half the window, not before" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 40_000, false)
      :ok = Scheduler.consume(s, 1, 32_766)
      assert Scheduler.flush(s) == []
      :ok = Scheduler.consume(s, 1, 1)
      assert Scheduler.flush(s) == [{0, 32_767}, {1, 32_767}]
      assert Scheduler.flush(s) == []
      assert Scheduler.stream_remaining(s, 1) == 65_535 - 40_000 + 32_767
    end

    test "the threshold option moves it" do
      s = new(window_update_threshold: 10)
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 10_000, false)
      :ok = Scheduler.consume(s, 1, 6_552)
      assert Scheduler.flush(s) == []
      :ok = Scheduler.consume(s, 1, 1)
      assert Scheduler.flush(s) == [{0, 6_553}, {1, 6_553}]
    end

    test "a peer about to stall on a small remainder gets credit below the threshold once the application drained" do
      s = new(window_update_threshold: 90)
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 40_000, false)
      :ok = Scheduler.consume(s, 1, 40_000)
      # 25,535 left: more than one max-size frame, so the peer is not stalling.
      assert Scheduler.flush(s) == []

      :ok = Scheduler.data(s, 1, 20_000, false)
      # 5,535 left, but 20,000 bytes unread (more than a quarter of the window): hold back.
      assert Scheduler.flush(s) == []
      :ok = Scheduler.consume(s, 1, 10_000)
      assert Scheduler.flush(s) == [{0, 50_000}, {1, 50_000}]
    end

    test "bytes that are not consumed are never credited: buffering stops at the window" do
      s = new()

      for id <- [1, 3, 5] do
        :ok = Scheduler.open_stream(s, id, nil, false)
      end

      :ok = Scheduler.data(s, 1, 30_000, false)
      :ok = Scheduler.data(s, 3, 30_000, false)
      :ok = Scheduler.data(s, 5, 5_535, false)
      assert Scheduler.flush(s) == []
      assert %{buffered_bytes: 65_535, connection_remaining: 0} = Scheduler.info(s)

      assert {:error, {:connection_error, :flow_control_error, message}} =
               Scheduler.data(s, 5, 1, false)

      assert message =~ "RFC 9113 6.9.1"
    end
  end

  describe "where credit may go" do
    test "no stream credit after END_STREAM, and no connection credit while no stream can use it" do
      s = new(window_update_threshold: 25)
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 20_000, true)
      :ok = Scheduler.consume(s, 1, 20_000)
      # Over the threshold, but the peer still has more than half the window and no stream
      # can send.
      assert Scheduler.flush(s) == []
      assert Scheduler.stream_remaining(s, 1) == nil

      # A stream that can send opens: the connection credit is now useful.
      :ok = Scheduler.open_stream(s, 3, nil, false)
      assert Scheduler.flush(s) == [{0, 20_000}]
    end

    test "a peer left with less than half the connection window is topped up" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 40_000, true)
      :ok = Scheduler.consume(s, 1, 40_000)
      assert Scheduler.flush(s) == [{0, 40_000}]
    end

    test "end_stream/2 stops credit for a stream" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.open_stream(s, 3, nil, false)
      :ok = Scheduler.data(s, 1, 40_000, false)
      :ok = Scheduler.end_stream(s, 1)
      :ok = Scheduler.consume(s, 1, 40_000)
      assert Scheduler.flush(s) == [{0, 40_000}]
    end

    test "stream credit never goes beyond the remaining content-length" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, 100_000, false)
      :ok = Scheduler.data(s, 1, 40_000, false)
      :ok = Scheduler.consume(s, 1, 40_000)
      # 60,000 bytes still to come, 25,535 of them already covered by the window, and the
      # byte the client needs to send END_STREAM.
      assert Scheduler.flush(s) == [{0, 40_000}, {1, 34_466}]
      assert Scheduler.stream_remaining(s, 1) == 60_001

      :ok = Scheduler.data(s, 1, 60_000, true)
      :ok = Scheduler.consume(s, 1, 60_000)
      # The finished stream gets nothing; the connection, left with 5,535, is topped up.
      assert Scheduler.flush(s) == [{0, 60_000}]
    end

    test "a body that fits the window needs no credit at all" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, 40_000, false)
      :ok = Scheduler.data(s, 1, 30_000, false)
      :ok = Scheduler.consume(s, 1, 30_000)
      assert Scheduler.flush(s) == []
    end

    test "no connection credit while the peer's window covers every declared body" do
      s = new(initial_connection_window: 200_000, window_update_threshold: 1)
      0 = 200_000 - 65_535 - Scheduler.initial_credit(s)
      :ok = Scheduler.open_stream(s, 1, 16_384, false)
      :ok = Scheduler.open_stream(s, 3, 16_384, false)
      :ok = Scheduler.data(s, 1, 16_384, true)
      :ok = Scheduler.consume(s, 1, 16_384)
      :ok = Scheduler.data(s, 3, 10_000, false)
      :ok = Scheduler.consume(s, 3, 10_000)
      assert Scheduler.flush(s) == []

      # A stream without a declared length may need it.
      :ok = Scheduler.open_stream(s, 5, nil, false)
      assert Scheduler.flush(s) == [{0, 26_384}]
    end

    test "padding is credited at once, for the stream and the connection" do
      s = new(window_update_threshold: 1)
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 1_000, false, 200)
      assert %{buffered_bytes: 200} = Scheduler.info(s)
      assert Scheduler.flush(s) == [{0, 800}, {1, 800}]
    end

    test "closing a stream releases what it buffered to the connection" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.open_stream(s, 3, nil, false)
      :ok = Scheduler.data(s, 1, 50_000, false)
      :ok = Scheduler.close_stream(s, 1)
      assert %{buffered_bytes: 0} = Scheduler.info(s)
      assert Scheduler.flush(s) == [{0, 50_000}]
      # Consuming on a stream that is gone is a no-op.
      assert :ok = Scheduler.consume(s, 1, 50_000)
    end
  end

  describe "coalescing" do
    test "one flush gives at most one connection credit and one per stream" do
      s = new(initial_connection_window: 200_000)
      _ = Scheduler.initial_credit(s)
      ids = [1, 3, 5, 7]

      for id <- ids do
        :ok = Scheduler.open_stream(s, id, nil, false)
        :ok = Scheduler.data(s, id, 20_000, false)
        :ok = Scheduler.data(s, id, 20_000, false)
      end

      for id <- ids, _ <- 1..4, do: :ok = Scheduler.consume(s, id, 10_000)

      assert Scheduler.flush(s) == [
               {0, 160_000},
               {1, 40_000},
               {3, 40_000},
               {5, 40_000},
               {7, 40_000}
             ]

      assert Scheduler.flush(s) == []

      assert %{
               connection_window_updates: 2,
               stream_window_updates: 4,
               flushes_with_window_updates: 1
             } = Scheduler.info(s)
    end
  end

  describe "enforcement and misuse" do
    test "DATA past a stream's window is a stream error; the connection is still charged" do
      s = new(initial_stream_window: 1_000, initial_connection_window: 65_535)
      :ok = Scheduler.open_stream(s, 1, nil, false)

      assert {:error, {:stream_error, 1, :flow_control_error, _}} =
               Scheduler.data(s, 1, 1_001, false)

      assert %{connection_remaining: 64_534, buffered_bytes: 0} = Scheduler.info(s)
    end

    test "consuming more than was received raises" do
      s = new()
      :ok = Scheduler.open_stream(s, 1, nil, false)
      :ok = Scheduler.data(s, 1, 10, false)
      assert_raise ArgumentError, fn -> Scheduler.consume(s, 1, 11) end
      assert_raise ArgumentError, fn -> Scheduler.data(s, 1, 10, false, 11) end
    end
  end

  # A peer that respects the windows against a consumer that reads at random: the invariants of
  # the module doc hold after every step.
  test "random traffic keeps the invariants" do
    :rand.seed(:exsss, {ExUnit.configuration()[:seed], 3, 5})

    for _run <- 1..20 do
      conn_window = Enum.random([65_535, 200_000, 1_048_576])
      stream_window = Enum.random([16_384, 65_535, 262_144])
      s = new(initial_connection_window: conn_window, initial_stream_window: stream_window)
      peer = %{conn: 65_535 + Scheduler.initial_credit(s), streams: %{}, unread: %{}}

      Enum.reduce(1..300, {peer, 1}, fn _, {peer, next_id} ->
        step(s, peer, next_id, conn_window)
      end)
    end
  end

  defp step(s, peer, next_id, conn_window) do
    {peer, next_id} =
      case :rand.uniform(10) do
        1 ->
          length = Enum.random([nil, :rand.uniform(200_000)])
          :ok = Scheduler.open_stream(s, next_id, length, false)
          window = Scheduler.stream_remaining(s, next_id)
          peer = put_in(peer.streams[next_id], %{window: window, left: length || :infinity})
          {peer, next_id + 2}

        n when n <= 6 and peer.streams != %{} ->
          {id, st} = Enum.random(peer.streams)
          n = Enum.min([:rand.uniform(16_384), peer.conn, st.window, left(st.left)])
          last? = st.left != :infinity and n == st.left
          :ok = Scheduler.data(s, id, n, last?)
          unread = if n > 0, do: Map.update(peer.unread, id, n, &(&1 + n)), else: peer.unread
          peer = %{peer | conn: peer.conn - n, unread: unread}

          peer =
            if last?,
              do: %{peer | streams: Map.delete(peer.streams, id)},
              else:
                update_in(peer.streams[id], &%{&1 | window: &1.window - n, left: sub(&1.left, n)})

          {peer, next_id}

        _ when peer.unread != %{} ->
          {id, n} = Enum.random(peer.unread)
          k = :rand.uniform(n)
          :ok = Scheduler.consume(s, id, k)

          unread =
            if k == n, do: Map.delete(peer.unread, id), else: Map.put(peer.unread, id, n - k)

          {%{peer | unread: unread}, next_id}

        _ ->
          {peer, next_id}
      end

    credits = Scheduler.flush(s)
    {conn_credits, stream_credits} = Enum.split_with(credits, &match?({0, _}, &1))
    assert length(conn_credits) <= 1
    assert conn_credits == [] or hd(credits) == hd(conn_credits)
    ids = for {id, _} <- stream_credits, do: id
    assert ids == Enum.uniq(ids)
    # Credit only for streams that may still send.
    assert Enum.all?(ids, &Map.has_key?(peer.streams, &1))

    info = Scheduler.info(s)
    assert info.buffered_bytes <= conn_window
    assert info.buffered_bytes == Enum.sum(Map.values(peer.unread))

    peer =
      Enum.reduce(credits, peer, fn
        {0, n}, peer -> %{peer | conn: peer.conn + n}
        {id, n}, peer -> update_in(peer.streams[id].window, &(&1 + n))
      end)

    assert info.connection_remaining == peer.conn
    {peer, next_id}
  end

  defp left(:infinity), do: 16_384
  defp left(n), do: n

  defp sub(:infinity, _), do: :infinity
  defp sub(left, n), do: left - n
end
