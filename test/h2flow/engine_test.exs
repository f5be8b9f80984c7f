defmodule H2Flow.EngineTest do
  # H2Flow.Engine as an application that drives HTTP/2 itself would use it: frames in (written
  # with bit syntax and the test client's literal HPACK, not with the code under test), events
  # and bytes out. The protocol itself is tested in the core crate (native/h2flow_core/tests).
  use ExUnit.Case, async: true

  alias H2Flow.Engine
  alias H2Flow.Test.H2Client
  alias H2Flow.Test.H2Client.HPACK

  doctest H2Flow.Engine

  @kib 1024
  @mib 1024 * 1024
  @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

  defp frame(type, flags, id, payload),
    do: IO.iodata_to_binary(H2Client.encode_frame(type, flags, id, payload))

  defp settings(params \\ []),
    do: frame(:settings, 0, 0, for({k, v} <- params, do: <<k::16, v::32>>))

  defp data(id, payload, fin \\ false), do: frame(:data, if(fin, do: 1, else: 0), id, payload)

  defp headers(id, fields, fin) do
    frame(:headers, 4 + if(fin, do: 1, else: 0), id, HPACK.encode_literal_block(fields))
  end

  defp request(method, path, extra \\ []) do
    [{":method", method}, {":scheme", "https"}, {":path", path}, {":authority", "example.com"}] ++
      extra
  end

  # The frames of the engine's output, with header blocks decoded.
  defp frames(bytes, table \\ HPACK.new_table()), do: parse(bytes, table, [])

  defp parse(
         <<len::24, type, flags, _::1, id::31, payload::binary-size(len), rest::binary>>,
         t,
         acc
       ) do
    {f, t} =
      case type do
        0 ->
          {{:data, id, payload, Bitwise.band(flags, 1) == 1}, t}

        1 ->
          {:ok, fields, t} = HPACK.decode_block(t, payload)
          {{:headers, id, fields, Bitwise.band(flags, 1) == 1}, t}

        3 ->
          {{:rst_stream, id, payload}, t}

        4 ->
          {{:settings, Bitwise.band(flags, 1) == 1, for(<<k::16, v::32 <- payload>>, do: {k, v})},
           t}

        6 ->
          {{:ping, Bitwise.band(flags, 1) == 1}, t}

        7 ->
          {{:goaway, payload}, t}

        8 ->
          {{:window_update, id, :binary.decode_unsigned(payload)}, t}
      end

    parse(rest, t, [f | acc])
  end

  defp parse("", _t, acc), do: Enum.reverse(acc)

  # An engine past the preface, the client's SETTINGS acknowledged both ways.
  defp connected(opts \\ []) do
    {:ok, engine} = Engine.new(opts)
    _preface = Engine.flush(engine)
    {:ok, []} = Engine.recv(engine, @preface <> settings() <> frame(:settings, 1, 0, ""))
    _ack = Engine.flush(engine)
    engine
  end

  describe "options" do
    test "unknown keys and bad values raise ArgumentError naming them" do
      assert_raise ArgumentError, ~r/unknown engine option :bogus.*:max_concurrent_streams/, fn ->
        Engine.new(bogus: 1)
      end

      assert_raise ArgumentError, ~r/:max_frame_size.*got: 100/, fn ->
        Engine.new(max_frame_size: 100)
      end

      assert_raise ArgumentError, ~r/:adaptive_window/, fn ->
        Engine.new(adaptive_window: :yes)
      end

      assert_raise ArgumentError, ~r/:peer_reset_rate/, fn ->
        Engine.new(peer_reset_rate: {0, 1})
      end

      assert_raise ArgumentError, ~r/keyword list/, fn -> Engine.new([:max_frame_size]) end
    end

    test "an inconsistent combination is an error tuple, not a crash" do
      assert {:error, message} = Engine.new(initial_stream_window: 9 * @mib)
      assert message =~ "max_stream_window"
    end

    test "the defaults are the core crate's, and the advertised settings follow the options" do
      defaults = H2Flow.Engine.Options.defaults()
      assert defaults.initial_stream_window == 256 * @kib
      assert defaults.max_connection_send_queue == @mib
      assert defaults.send_stall_timeout == 30_000

      {:ok, engine} =
        Engine.new(
          max_concurrent_streams: 7,
          max_frame_size: 32_768,
          initial_connection_window: 65_535
        )

      # SETTINGS alone: no connection WINDOW_UPDATE when the window stays at 65,535.
      assert [{:settings, false, params}] = frames(Engine.flush(engine))
      assert {3, 7} in params and {5, 32_768} in params
    end
  end

  test "a request is the engine's validated view; the reply is one call" do
    engine = connected()
    fields = request("GET", "/a?b=1", [{"cookie", "x=1"}, {"accept", "*/*"}, {"cookie", "y=2"}])
    {:ok, [event]} = Engine.recv(engine, headers(1, fields, true))

    assert event ==
             {:request, 1, "GET", "https", "example.com", "/a", "b=1", nil,
              %{"cookie" => "x=1; y=2", "accept" => "*/*"}, true}

    assert {:ok, 5, false} = Engine.reply(engine, 1, [{":status", "200"}], "hello", true)

    assert [{:headers, 1, [{":status", "200"}], false}, {:data, 1, "hello", true}] =
             frames(Engine.flush(engine))

    assert Engine.info(engine).open_streams == 0
  end

  test "two identical content-length fields are one integer (RFC 9110 8.6)" do
    engine = connected()
    fields = request("POST", "/", [{"content-length", "5"}, {"content-length", "5"}])

    {:ok, [{:request, 1, "POST", _, _, "/", "", 5, headers, false}]} =
      Engine.recv(engine, headers(1, fields, false))

    assert headers["content-length"] == "5, 5"
  end

  describe "reads" do
    test "Cowboy's semantics: bytes reported, handed over to a read, completed by its length or the end" do
      engine = connected()

      {:ok, [{:request, 1, _, _, _, _, _, nil, _, false}]} =
        Engine.recv(engine, headers(1, request("POST", "/"), false))

      assert {:ok, [{:data, 1, "abc", false}]} = Engine.recv(engine, data(1, "abc"))
      assert Engine.info(engine).buffered_bytes == 3
      assert Engine.read(engine, 1, 10) == :wait
      assert Engine.info(engine).buffered_bytes == 0

      assert {:ok, [{:data, 1, _, false}, {:read_done, 1, :more}]} =
               Engine.recv(engine, data(1, :binary.copy("d", 10)))

      assert Engine.read(engine, 1, 8_000_000) == :wait
      assert Engine.read_timeout(engine, 1)
      refute Engine.read_timeout(engine, 1)
      assert Engine.read(engine, 1, 8_000_000) == :wait

      assert {:ok, [{:data, 1, "z", true}, {:read_done, 1, :fin}]} =
               Engine.recv(engine, data(1, "z", true))

      assert Engine.read(engine, 1, 10) == :fin
      assert Engine.read(engine, 99, 10) == {:error, :closed}
    end

    test "a discarded body is credited as it arrives and not reported" do
      engine = connected()
      {:ok, _} = Engine.recv(engine, headers(1, request("POST", "/"), false))
      {:ok, [{:data, 1, _, false}]} = Engine.recv(engine, data(1, :binary.copy("a", 10_000)))
      assert :ok = Engine.discard(engine, 1)
      assert {:ok, []} = Engine.recv(engine, data(1, :binary.copy("a", 10_000)))
      assert Engine.info(engine).buffered_bytes == 0
    end

    test "large DATA payloads are sub-binaries of the input; small ones are copied" do
      engine = connected()

      for id <- [1, 3],
          do: {:ok, _} = Engine.recv(engine, headers(id, request("POST", "/"), false))

      input =
        data(1, :binary.copy("x", 16_000)) <> frame(:ping, 0, 0, "pingpong") <> data(3, "small")

      assert {:ok, [{:data, 1, big, false}, {:data, 3, small, false}]} =
               Engine.recv(engine, input)

      assert :binary.referenced_byte_size(big) == byte_size(input)
      assert :binary.referenced_byte_size(small) == 5
    end

    test "input larger than 64 KiB is fed in chunks, a frame split across calls is reassembled" do
      engine = connected()

      {:ok, _} =
        Engine.recv(
          engine,
          headers(1, request("POST", "/", [{"content-length", "192000"}]), false)
        )

      body = :binary.copy("0123456789", 19_200)
      input = for <<chunk::binary-size(16_000) <- body>>, into: "", do: data(1, chunk)
      <<a::binary-size(100_000), b::binary>> = input
      assert {:ok, events_a} = Engine.recv(engine, a)
      assert {:ok, events_b} = Engine.recv(engine, b)
      assert IO.iodata_to_binary(for {:data, 1, d, _} <- events_a ++ events_b, do: d) == body
    end
  end

  describe "sending" do
    test "send_body takes what its queues have room for and says when to wait" do
      engine = connected(max_send_queue: 10_000)
      # The client opens no stream window.
      {:ok, _} = Engine.recv(engine, settings([{4, 0}]) <> headers(1, request("GET", "/"), true))
      :ok = Engine.send_headers(engine, 1, [{":status", "200"}], false)
      assert {:ok, 10_000, true} = Engine.send_body(engine, 1, :binary.copy("a", 50_000), false)
      # The window opens: the queue goes out, and the sender is told.
      {:ok, events} = Engine.recv(engine, settings([{4, 65_535}]))
      assert {:send_window_open, 1} in events
      assert {:ok, 10_000, false} = Engine.send_body(engine, 1, :binary.copy("a", 50_000), false)
    end

    test "a send to a stream the peer reset is {:error, :closed} and is counted" do
      engine = connected()
      {:ok, _} = Engine.recv(engine, headers(1, request("GET", "/"), true))

      assert {:ok, [{:stream_reset, 1, :cancel}]} =
               Engine.recv(engine, frame(:rst_stream, 0, 1, <<8::32>>))

      assert {:error, :closed} = Engine.send_headers(engine, 1, [{":status", "200"}], false)
      assert {:error, :closed} = Engine.reply(engine, 1, [{":status", "200"}], "late", true)
      assert :ok = Engine.reset_stream(engine, 1, :cancel)
      s = Engine.stats(engine)
      assert s.writes_to_closed_streams == 2
      assert s.streams_reset_by_peer == 1
    end

    test "misuse raises ArgumentError" do
      engine = connected()
      {:ok, _} = Engine.recv(engine, headers(1, request("POST", "/"), false) <> data(1, "abc"))

      assert_raise ArgumentError, ~r/more bytes than were received/, fn ->
        Engine.consume(engine, 1, 4)
      end

      assert_raise ArgumentError, ~r/no such stream/, fn ->
        Engine.send_headers(engine, 2, [{":status", "200"}], true)
      end

      assert_raise ArgumentError, ~r/:status/, fn ->
        Engine.send_headers(engine, 1, [{"x", "y"}], true)
      end

      assert_raise ArgumentError, ~r/headers must be sent before/, fn ->
        Engine.send_body(engine, 1, "x", true)
      end

      assert_raise ArgumentError, fn -> Engine.reset_stream(engine, 1, :not_a_code) end
      assert {:ok, 4, false} = Engine.reply(engine, 1, [{":status", "200"}], "done", true)

      assert_raise ArgumentError, ~r/already ended/, fn ->
        Engine.send_body(engine, 1, "more", true)
      end
    end
  end

  describe "errors and timeouts" do
    test "a connection error returns the reason and queues GOAWAY" do
      engine = connected()

      assert {:error, {:connection_error, :protocol_error, message}} =
               Engine.recv(engine, frame(:window_update, 0, 0, <<0::32>>))

      assert message =~ "RFC 9113 6.9"
      assert [{:goaway, _}] = frames(Engine.flush(engine))
      assert %{closed: true, done: true} = Engine.info(engine)
    end

    test "an invalid preface is a connection error PROTOCOL_ERROR (RFC 9113 3.4)" do
      {:ok, engine} = Engine.new()

      assert {:error, {:connection_error, :protocol_error, _}} =
               Engine.recv(engine, "INVALID CONNECTION PREFACE\r\n\r\n")

      assert [
               {:settings, false, _},
               {:window_update, 0, _},
               {:goaway, <<0::32, 1::32, _::binary>>}
             ] = frames(Engine.flush(engine))
    end

    test "check_timeouts reports send stalls as events" do
      engine = connected(send_stall_timeout: 1)

      {:ok, _} =
        Engine.recv(
          engine,
          settings([{4, 0}]) <> Enum.map_join([1, 3], &headers(&1, request("GET", "/"), true))
        )

      for id <- [1, 3] do
        :ok = Engine.send_headers(engine, id, [{":status", "200"}], false)
        # No window: queued.
        {:ok, 1, false} = Engine.send_body(engine, id, "x", false)
      end

      # At least 5 ms pass, more than the 1 ms allowed.
      Process.sleep(5)
      assert {:error, {:connection_error, :no_error, _}, events} = Engine.check_timeouts(engine)
      assert Enum.sort(events) == [{:send_timeout, 1}, {:send_timeout, 3}]
      assert Engine.stats(engine).send_timeouts == 2
    end
  end

  test "stats: frames and counters; a connection closed before its first flush sent nothing" do
    {:ok, engine} = Engine.new()
    s0 = Engine.stats(engine)
    assert s0.frames_sent.settings == 0 and s0.window_update_frames == %{connection: 0, stream: 0}
    _ = Engine.flush(engine)
    s1 = Engine.stats(engine)
    assert s1.frames_sent.settings == 1 and s1.window_update_frames == %{connection: 1, stream: 0}
    assert Map.has_key?(s1, :send_timeouts) and Map.has_key?(s1.defences, :reset_flood)
  end
end
