defmodule H2Flow.EngineTest.Peer do
  @moduledoc false
  # The client side of the engine tests: writes frames with H2Flow.Frame and literal HPACK
  # blocks, keeps its bytes "in flight" until a test delivers them to the engine, and tracks the
  # flow-control windows the server grants (SETTINGS, WINDOW_UPDATE), sending DATA only within
  # them.

  import ExUnit.Assertions

  alias H2Flow.{Engine, Frame}
  alias H2Flow.Test.H2Client

  @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

  defstruct [
    :engine,
    out: :queue.new(),
    out_size: 0,
    conn_window: 65_535,
    initial_window: 65_535,
    streams: %{},
    sending: [],
    table: nil,
    block: nil,
    responses: %{},
    resets: %{},
    goaways: [],
    server_frames: 0,
    settings_seen: 0,
    pings: 0,
    wu: %{connection: 0, stream: 0}
  ]

  @doc false
  # A client with its preface and SETTINGS written; with `read: true` (the default) it has also
  # read the server's preface (SETTINGS + connection WINDOW_UPDATE) and acknowledged it.
  def connect(engine_opts \\ [], opts \\ []) do
    {:ok, engine} = Engine.new(engine_opts)
    settings = Keyword.get(opts, :settings, [])
    peer = %__MODULE__{engine: engine, table: H2Client.new_table()}
    peer = write(peer, [@preface, Frame.encode(%Frame.Settings{params: settings})])
    if Keyword.get(opts, :read, true), do: read_server(peer), else: peer
  end

  def write(peer, iodata) do
    bin = IO.iodata_to_binary(iodata)
    %{peer | out: :queue.in(bin, peer.out), out_size: peer.out_size + byte_size(bin)}
  end

  @doc false
  # Writes HEADERS for a request. `body`: "" ends the stream on HEADERS; `:open` leaves it open
  # for DATA the test writes itself; a binary is sent by pump/1 as the windows allow.
  def open(peer, id, headers, body \\ "") do
    block = H2Client.encode_literal_block(headers)
    frame = %Frame.Headers{stream_id: id, fragment: block, end_stream: body == ""}
    peer = write(peer, Frame.encode(frame))

    if is_binary(body) and body != "" do
      stream = %{window: peer.initial_window, body: body, sent: 0}
      %{peer | streams: Map.put(peer.streams, id, stream), sending: peer.sending ++ [id]}
    else
      peer
    end
  end

  @doc false
  # Writes DATA for every stream with body left, within the windows, at most 16 KiB per frame.
  def pump(peer) do
    Enum.reduce(peer.sending, %{peer | sending: []}, fn id, peer ->
      case pump_stream(peer, id, Map.fetch!(peer.streams, id)) do
        {peer, :done} -> peer
        {peer, :more} -> %{peer | sending: peer.sending ++ [id]}
      end
    end)
  end

  defp pump_stream(peer, id, s) do
    left = byte_size(s.body) - s.sent
    n = Enum.min([left, 16_384, s.window, peer.conn_window])

    cond do
      Map.has_key?(peer.resets, id) ->
        {peer, :done}

      n <= 0 ->
        {peer, :more}

      true ->
        done? = n == left

        frame = %Frame.Data{
          stream_id: id,
          data: binary_part(s.body, s.sent, n),
          end_stream: done?
        }

        s = %{s | window: s.window - n, sent: s.sent + n}
        peer = %{write(peer, Frame.encode(frame)) | conn_window: peer.conn_window - n}
        peer = %{peer | streams: Map.put(peer.streams, id, s)}
        if done?, do: {peer, :done}, else: pump_stream(peer, id, s)
    end
  end

  @doc false
  # Body bytes the client still has to send.
  def unsent(peer) do
    Enum.sum(for id <- peer.sending, s = peer.streams[id], do: byte_size(s.body) - s.sent)
  end

  @doc false
  # Delivers up to `max` in-flight bytes to the engine (one socket read); returns the events.
  def deliver(peer, max \\ :all) do
    {chunks, peer} = take(peer, if(max == :all, do: peer.out_size, else: max), [])

    case Engine.recv(peer.engine, IO.iodata_to_binary(chunks)) do
      {:ok, events} -> {peer, events}
      {:error, reason} -> flunk("the engine failed the connection: #{inspect(reason)}")
    end
  end

  defp take(peer, 0, acc), do: {Enum.reverse(acc), peer}

  defp take(peer, max, acc) do
    case :queue.out(peer.out) do
      {:empty, _} ->
        {Enum.reverse(acc), peer}

      {{:value, bin}, queue} when byte_size(bin) <= max ->
        peer = %{peer | out: queue, out_size: peer.out_size - byte_size(bin)}
        take(peer, max - byte_size(bin), [bin | acc])

      {{:value, bin}, queue} ->
        rest = binary_part(bin, max, byte_size(bin) - max)
        peer = %{peer | out: :queue.in_r(rest, queue), out_size: peer.out_size - max}
        {Enum.reverse([binary_part(bin, 0, max) | acc]), peer}
    end
  end

  @doc false
  # Flushes the engine and reads what it wrote.
  def read_server(peer) do
    bytes = Engine.flush(peer.engine)
    {:ok, frames, ""} = Frame.decode(bytes)
    Enum.reduce(frames, %{peer | server_frames: peer.server_frames + length(frames)}, &handle/2)
  end

  defp handle(%Frame.Settings{ack: true}, peer), do: peer

  defp handle(%Frame.Settings{params: params}, peer) do
    peer =
      Enum.reduce(params, peer, fn
        {:initial_window_size, size}, peer ->
          # RFC 9113 6.9.2: the change applies to every open stream's window.
          delta = size - peer.initial_window
          streams = Map.new(peer.streams, fn {id, s} -> {id, %{s | window: s.window + delta}} end)
          %{peer | initial_window: size, streams: streams}

        _, peer ->
          peer
      end)

    write(
      %{peer | settings_seen: peer.settings_seen + 1},
      Frame.encode(%Frame.Settings{ack: true})
    )
  end

  defp handle(%Frame.WindowUpdate{stream_id: 0, increment: n}, peer),
    do: %{
      peer
      | conn_window: peer.conn_window + n,
        wu: Map.update!(peer.wu, :connection, &(&1 + 1))
    }

  defp handle(%Frame.WindowUpdate{stream_id: id, increment: n}, peer) do
    # Streams whose DATA the test writes itself are not tracked.
    streams =
      case peer.streams do
        %{^id => s} -> Map.put(peer.streams, id, %{s | window: s.window + n})
        streams -> streams
      end

    %{peer | streams: streams, wu: Map.update!(peer.wu, :stream, &(&1 + 1))}
  end

  defp handle(%Frame.Ping{ack: false, data: data}, peer),
    do: write(%{peer | pings: peer.pings + 1}, Frame.encode(%Frame.Ping{ack: true, data: data}))

  defp handle(%Frame.Ping{ack: true}, peer), do: peer

  defp handle(%Frame.Headers{end_headers: false} = h, peer),
    do: %{peer | block: {h.stream_id, h.end_stream, [h.fragment]}}

  defp handle(%Frame.Headers{} = h, peer),
    do: headers(peer, h.stream_id, h.end_stream, h.fragment)

  defp handle(%Frame.Continuation{} = c, %{block: {id, end_stream, acc}} = peer) do
    if c.end_headers,
      do: headers(%{peer | block: nil}, id, end_stream, IO.iodata_to_binary([acc, c.fragment])),
      else: %{peer | block: {id, end_stream, [acc, c.fragment]}}
  end

  defp handle(%Frame.Data{stream_id: id, data: data, end_stream: fin}, peer) do
    response(peer, id, fn r -> %{r | body: r.body <> data, done: fin} end)
  end

  defp handle(%Frame.RstStream{stream_id: id, error_code: code}, peer),
    do: %{peer | resets: Map.put(peer.resets, id, code), sending: List.delete(peer.sending, id)}

  # RFC 9113 6.8: streams above the last stream id were not processed; stop sending on them.
  defp handle(%Frame.Goaway{} = g, peer) do
    sending = Enum.filter(peer.sending, &(&1 <= g.last_stream_id))
    %{peer | goaways: peer.goaways ++ [g], sending: sending}
  end

  defp headers(peer, id, end_stream, block) do
    {:ok, fields, table} = H2Client.decode_block(peer.table, block)

    response(%{peer | table: table}, id, fn
      %{headers: nil} = r -> %{r | headers: fields, done: end_stream}
      r -> %{r | trailers: fields, done: end_stream}
    end)
  end

  defp response(peer, id, fun) do
    r = Map.get(peer.responses, id, %{headers: nil, body: "", trailers: nil, done: false})
    %{peer | responses: Map.put(peer.responses, id, fun.(r))}
  end
end

defmodule H2Flow.EngineTest do
  use ExUnit.Case, async: true

  alias H2Flow.{Engine, Frame}
  alias H2Flow.EngineTest.Peer

  @kib 1024
  @mib 1024 * 1024

  defp get(path \\ "/"),
    do: [{":method", "GET"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", path}]

  defp post(size) when is_integer(size),
    do:
      [
        {":method", "POST"},
        {":scheme", "http"},
        {":authority", "localhost"},
        {":path", "/upload"}
      ] ++ [{"content-length", Integer.to_string(size)}]

  defp post(nil),
    do: [
      {":method", "POST"},
      {":scheme", "http"},
      {":authority", "localhost"},
      {":path", "/upload"}
    ]

  defp body(id, size), do: :binary.copy(<<rem(id, 251)>>, size)

  # What the application got: per stream, bytes received and not consumed, consumed, ended?
  defp track(app, events) do
    Enum.reduce(events, app, fn
      {:headers, id, _headers, fin}, app ->
        app
        |> Map.put(id, %{buffered: 0, consumed: 0, ended: fin, replied: false})
        |> Map.update(:order, [id], &(&1 ++ [id]))

      {:data, id, data, fin}, app ->
        Map.update!(app, id, &%{&1 | buffered: &1.buffered + byte_size(data), ended: fin})

      {:trailers, id, _}, app ->
        Map.update!(app, id, &%{&1 | ended: true})

      other, _app ->
        flunk("unexpected event #{inspect(other)}")
    end)
  end

  # Consumes what up to `k` streams buffered (oldest first); answers streams read to the end.
  defp consume_and_reply(app, engine, k) do
    ids = Map.get(app, :order, [])
    due = ids |> Enum.filter(&(app[&1].buffered > 0)) |> Enum.take(k)

    app =
      Enum.reduce(due, app, fn id, app ->
        :ok = Engine.consume(engine, id, app[id].buffered)
        Map.update!(app, id, &%{&1 | consumed: &1.consumed + &1.buffered, buffered: 0})
      end)

    Enum.reduce(ids, app, fn id, app ->
      s = app[id]

      if s.ended and s.buffered == 0 and not s.replied do
        :ok = Engine.send_headers(engine, id, [{":status", "200"}], false)
        {:ok, 0} = Engine.send_data(engine, id, Integer.to_string(s.consumed), true)
        Map.update!(app, id, &%{&1 | replied: true})
      else
        app
      end
    end)
  end

  describe "options" do
    test "unknown keys and bad values raise ArgumentError" do
      assert_raise ArgumentError, ~r/unknown engine option :bogus/, fn -> Engine.new(bogus: 1) end
      assert_raise ArgumentError, ~r/:max_frame_size/, fn -> Engine.new(max_frame_size: 100) end

      assert_raise ArgumentError, ~r/:adaptive_window/, fn ->
        Engine.new(adaptive_window: :yes)
      end

      assert_raise ArgumentError, ~r/:peer_reset_rate/, fn ->
        Engine.new(peer_reset_rate: {0, 1})
      end

      assert_raise ArgumentError, ~r/:max_concurrent_streams/, fn ->
        Engine.new(max_concurrent_streams: -1)
      end

      assert_raise ArgumentError, ~r/keyword list/, fn -> Engine.new([:max_frame_size]) end
    end

    test "an inconsistent combination is an error tuple, not a crash" do
      assert {:error, message} = Engine.new(initial_stream_window: 9 * @mib)
      assert message =~ "max_stream_window"
    end

    test "the advertised settings follow the options" do
      {:ok, engine} =
        Engine.new(
          max_concurrent_streams: 7,
          max_frame_size: 32_768,
          initial_connection_window: 65_535
        )

      # SETTINGS alone: no connection WINDOW_UPDATE when the window stays at 65,535.
      {:ok, [settings], ""} = Frame.decode(Engine.flush(engine))
      assert {:max_concurrent_streams, 7} in settings.params
      assert {:max_frame_size, 32_768} in settings.params
    end
  end

  test "a GET is answered 200 with its headers and body decoded back" do
    peer = Peer.connect()
    assert peer.conn_window == @mib
    assert peer.initial_window == 256 * @kib

    peer = Peer.open(peer, 1, get("/hello"))
    {peer, events} = Peer.deliver(peer)
    assert [{:headers, 1, headers, true}] = events
    assert headers == get("/hello")

    :ok =
      Engine.send_headers(
        engine(peer),
        1,
        [{":status", "200"}, {"content-type", "text/plain"}],
        false
      )

    assert {:ok, 0} = Engine.send_data(engine(peer), 1, ["hel", "lo"], true)
    peer = Peer.read_server(peer)

    assert %{
             headers: [{":status", "200"}, {"content-type", "text/plain"}],
             body: "hello",
             done: true
           } = peer.responses[1]

    assert Engine.info(engine(peer)).open_streams == 0
  end

  defp engine(peer), do: peer.engine

  describe "the issue's scenarios" do
    # (a) Cowboy: 2 WINDOW_UPDATEs for 64 × 1 KiB, 62 for 64 × 16 KiB.
    for size <- [1 * 1024, 16 * 1024] do
      test "(a) 64 uploads × #{div(size, 1024)} KiB sent at once arrive without a credit" do
        size = unquote(size)
        peer = Peer.connect()
        ids = for i <- 0..63, do: 2 * i + 1
        peer = Enum.reduce(ids, peer, &Peer.open(&2, &1, post(size), body(&1, size)))
        peer = Peer.pump(peer)
        assert Peer.unsent(peer) == 0, "the windows the server opened take every body at once"

        {peer, events} = Peer.deliver(peer)
        app = track(%{}, events)
        assert Enum.all?(ids, &(app[&1].ended and app[&1].buffered == size))
        assert Engine.info(engine(peer)).buffered_bytes == 64 * size

        app = consume_and_reply(app, engine(peer), 64)
        peer = Peer.read_server(peer)
        assert Enum.all?(ids, &(peer.responses[&1].body == Integer.to_string(size)))
        assert Map.get(app, :order) == ids

        # At most one more than the server preface's connection WINDOW_UPDATE (Cowboy: 62).
        assert peer.wu.stream == 0
        assert peer.wu.connection <= 2
        assert Engine.stats(engine(peer)).window_update_frames == peer.wu
        assert Engine.info(engine(peer)).buffered_bytes == 0
      end
    end

    # (b) Cowboy answers none of the 300 (GOAWAY after 10 refusals); Bandit dies on a
    # COMPRESSION_ERROR. The client here writes its burst before it has read the server's
    # SETTINGS, as clients that do not wait for them do.
    test "(b) 300 uploads × 16 KiB against 100 concurrent streams, with a lagging consumer" do
      peer = Peer.connect([max_concurrent_streams: 100], read: false)
      ids = for i <- 0..299, do: 2 * i + 1
      peer = Enum.reduce(ids, peer, &Peer.open(&2, &1, post(16 * @kib), body(&1, 16 * @kib)))
      peer = Peer.pump(peer)
      # Before any WINDOW_UPDATE the client may send 65,535 bytes.
      assert Peer.unsent(peer) == 300 * 16 * @kib - 65_535

      {peer, app, _rounds, peak} = run_b(peer, %{}, 0, 0)
      {accepted, refused} = Enum.split(ids, 100)

      for id <- accepted do
        assert %{headers: [{":status", "200"} | _], body: "16384", done: true} =
                 peer.responses[id]
      end

      assert Map.keys(peer.resets) |> Enum.sort() == refused
      assert Enum.all?(refused, &(peer.resets[&1] == :refused_stream))
      assert peer.goaways == []
      assert Map.get(app, :order) == accepted

      assert peer.wu.stream == 0
      assert peer.wu.connection <= 20

      stats = Engine.stats(engine(peer))
      assert stats.streams_opened == 100
      assert stats.streams_refused == 200
      assert stats.window_update_frames == peer.wu
      assert stats.peak_buffered_bytes <= stats.connection_window
      assert peak <= @mib
    end

    defp run_b(peer, app, rounds, peak) do
      assert rounds < 10_000
      # The network delivers everything in flight; the consumer reads two streams per flush.
      {peer, events} = Peer.deliver(peer)
      app = track(app, events)
      peak = max(peak, Engine.info(engine(peer)).buffered_bytes)
      app = consume_and_reply(app, engine(peer), 2)
      peer = peer |> Peer.read_server() |> Peer.pump()
      done = Enum.count(peer.responses, fn {_, r} -> r.done end)

      cond do
        done == 100 and peer.out_size == 0 ->
          {peer, app, rounds + 1, peak}

        peer.out_size == 0 and Enum.all?(Map.get(app, :order, []), &(app[&1].buffered == 0)) ->
          flunk("stalled: nothing in flight, nothing to consume, #{done} of 100 answered")

        true ->
          run_b(peer, app, rounds + 1, peak)
      end
    end

    test "(b) a client that acknowledged the limit and still opens 300 streams: the accepted ones finish" do
      peer = Peer.connect(max_concurrent_streams: 100)
      ids = for i <- 0..299, do: 2 * i + 1
      peer = Enum.reduce(ids, peer, &Peer.open(&2, &1, post(16 * @kib), body(&1, 16 * @kib)))
      peer = Peer.pump(peer)
      {peer, app, _rounds, _peak} = run_b(peer, %{}, 0, 0)
      {accepted, rest} = Enum.split(ids, 100)

      # Past the refused_stream_rate burst the server sends GOAWAY ENHANCE_YOUR_CALM naming the
      # last stream it accepted, and ignores streams above it (RFC 9113 6.8).
      assert [%Frame.Goaway{last_stream_id: 199, error_code: :enhance_your_calm}] = peer.goaways
      assert map_size(peer.resets) >= 100
      assert Enum.all?(rest, &(peer.resets[&1] in [:refused_stream, nil]))
      assert Enum.all?(accepted, &(peer.responses[&1].body == "16384"))
      assert Map.get(app, :order) == accepted
      assert Engine.stats(engine(peer)).defences.refused_stream_flood == 1
    end

    # (c) One big upload, consumed as it arrives. A stall: the client has data, no window, and
    # nothing in flight that could earn it one.
    for content_length? <- [true, false] do
      test "(c) one 64 MiB upload consumed as it arrives never stalls (content-length: #{content_length?})" do
        size = 64 * @mib
        peer = Peer.connect()
        headers = post(if unquote(content_length?), do: size, else: nil)

        peer =
          peer
          |> Peer.open(1, headers, :binary.copy("0123456789abcdef", div(size, 16)))
          |> Peer.pump()

        {peer, stats} = run_c(peer, %{reads: 0, received: 0, peak: 0})
        assert stats.received == size
        assert %{body: "67108864", done: true} = peer.responses[1]

        engine_stats = Engine.stats(engine(peer))
        assert engine_stats.peak_buffered_bytes <= engine_stats.connection_window
        assert engine_stats.window_update_frames == peer.wu
        assert engine_stats.stalls == 0
      end
    end

    defp run_c(peer, acc) do
      {peer, events} = Peer.deliver(peer, 65_536)
      info = Engine.info(engine(peer))
      assert info.buffered_bytes <= info.connection_window

      received =
        for {:data, 1, data, _} <- events, reduce: 0 do
          n ->
            :ok = Engine.consume(engine(peer), 1, byte_size(data))
            n + byte_size(data)
        end

      acc = %{
        acc
        | reads: acc.reads + 1,
          received: acc.received + received,
          peak: max(acc.peak, info.buffered_bytes)
      }

      if Enum.any?(events, &match?({:data, 1, _, true}, &1)) do
        :ok = Engine.send_headers(engine(peer), 1, [{":status", "200"}], false)
        {:ok, 0} = Engine.send_data(engine(peer), 1, Integer.to_string(acc.received), true)
      end

      peer = peer |> Peer.read_server() |> Peer.pump()

      cond do
        peer.responses[1][:done] == true ->
          {peer, acc}

        peer.out_size == 0 ->
          flunk(
            "stalled after #{acc.received} bytes: #{Peer.unsent(peer)} to send, windows #{peer.conn_window}/#{peer.streams[1].window}"
          )

        true ->
          run_c(peer, acc)
      end
    end

    # (d) Back-pressure: the consumer reads nothing; the client ends up blocked by flow control.
    test "(d) a consumer that never consumes: buffering stops at the connection window" do
      peer = Peer.connect()
      ids = [1, 3, 5, 7, 9, 11, 13, 15]
      peer = Enum.reduce(ids, peer, &Peer.open(&2, &1, post(@mib), body(&1, @mib))) |> Peer.pump()

      {peer, events} = run_d(peer, [], 0)
      assert Enum.all?(events, &match?({kind, _, _, _} when kind in [:headers, :data], &1))

      info = Engine.info(engine(peer))
      assert info.buffered_bytes == info.connection_window
      assert info.connection_window == @mib
      assert peer.conn_window == 0
      assert peer.out_size == 0
      assert Peer.unsent(peer) == 8 * @mib - @mib
      assert peer.goaways == [] and peer.resets == %{}
      refute info.closed

      # Nothing more is credited while nothing is consumed.
      wu = peer.wu
      peer = Peer.read_server(peer)
      assert peer.wu == wu
      assert wu == %{connection: 1, stream: 0}

      # Consuming releases credit at once, and the upload resumes.
      for {:data, id, data, _} <- events,
          do: :ok = Engine.consume(engine(peer), id, byte_size(data))

      peer = Peer.read_server(peer)
      assert peer.wu.connection == 2
      assert peer.conn_window == @mib
      assert Peer.pump(peer).out_size > 0
    end

    defp run_d(peer, events, rounds) do
      assert rounds < 1000
      {peer, new} = Peer.deliver(peer, 65_536)
      peer = peer |> Peer.read_server() |> Peer.pump()
      events = events ++ new
      if peer.out_size == 0, do: {peer, events}, else: run_d(peer, events, rounds + 1)
    end
  end

  describe "recv" do
    test "one recv of 64 KiB of mixed frames returns large DATA payloads as sub-binaries" do
      peer = Peer.connect()
      peer = Enum.reduce([1, 3, 5, 7], peer, &Peer.open(&2, &1, post(nil), :open))
      {peer, _} = Peer.deliver(peer)
      Peer.read_server(peer)

      input =
        IO.iodata_to_binary([
          Frame.encode(%Frame.Data{stream_id: 1, data: body(1, 16_000)}),
          Frame.encode(%Frame.Ping{data: "pingpong"}),
          Frame.encode(%Frame.Data{stream_id: 3, data: body(3, 16_000), padding: 20}),
          Frame.encode(%Frame.WindowUpdate{stream_id: 0, increment: 1000}),
          Frame.encode(%Frame.Priority{stream_id: 5, dependency: 1, weight: 7}),
          Frame.encode(%Frame.Data{stream_id: 5, data: body(5, 16_384), end_stream: true}),
          Frame.encode(%Frame.Data{stream_id: 7, data: body(7, 100)}),
          Frame.encode(%Frame.Unknown{type: 0xBB, payload: "x"})
        ])

      assert byte_size(input) <= 65_536
      assert {:ok, events} = Engine.recv(engine(peer), input)

      assert [
               {:data, 1, d1, false},
               {:data, 3, d3, false},
               {:data, 5, d5, true},
               {:data, 7, d7, false}
             ] = events

      assert {d1, d3, d5, d7} == {body(1, 16_000), body(3, 16_000), body(5, 16_384), body(7, 100)}

      for d <- [d1, d3, d5], do: assert(:binary.referenced_byte_size(d) == byte_size(input))
      # A small payload is copied, so it cannot keep the whole input alive.
      assert :binary.referenced_byte_size(d7) == 100
    end

    test "a frame split across two recv calls is reassembled" do
      peer = Peer.connect() |> Peer.open(1, post(nil), :open)
      {peer, _} = Peer.deliver(peer)
      frame = Frame.encode(%Frame.Data{stream_id: 1, data: body(1, 10_000), end_stream: true})
      <<a::binary-size(4000), b::binary>> = frame
      assert {:ok, []} = Engine.recv(engine(peer), a)
      assert {:ok, [{:data, 1, data, true}]} = Engine.recv(engine(peer), b)
      assert data == body(1, 10_000)
    end

    test "input larger than 64 KiB is fed in chunks and gives the same events" do
      peer = Peer.connect() |> Peer.open(1, post(200_000), :open)
      {peer, _} = Peer.deliver(peer)

      frames =
        for chunk <- chunks(body(1, 200_000), 16_384),
            do: Frame.encode(%Frame.Data{stream_id: 1, data: chunk})

      assert {:ok, events} = Engine.recv(engine(peer), IO.iodata_to_binary(frames))
      assert IO.iodata_to_binary(for {:data, 1, d, _} <- events, do: d) == body(1, 200_000)

      assert List.last(events) ==
               {:data, 1, binary_part(body(1, 200_000), 12 * 16_384, 200_000 - 12 * 16_384),
                false}
    end

    test "a connection error returns the reason and queues GOAWAY" do
      peer = Peer.connect()
      {peer, _} = Peer.deliver(peer)
      bad = Frame.encode(%Frame.WindowUpdate{stream_id: 0, increment: 0})

      assert {:error, {:connection_error, :protocol_error, message}} =
               Engine.recv(engine(peer), bad)

      assert message =~ "RFC 9113 6.9"
      peer = Peer.read_server(peer)
      assert [%Frame.Goaway{error_code: :protocol_error}] = peer.goaways
      assert %{closed: true, done: true} = Engine.info(engine(peer))
    end

    test "a stream error resets the stream and the connection goes on" do
      peer = Peer.connect() |> Peer.open(1, post(nil), :open) |> Peer.open(3, get())
      {peer, _} = Peer.deliver(peer)
      bad = Frame.encode(%Frame.WindowUpdate{stream_id: 1, increment: 0})
      assert {:ok, [{:stream_error, 1, :protocol_error, _}]} = Engine.recv(engine(peer), bad)
      peer = Peer.read_server(peer)
      assert peer.resets == %{1 => :protocol_error}
      assert :ok = Engine.send_headers(engine(peer), 3, [{":status", "204"}], true)
      assert %{headers: [{":status", "204"}], done: true} = Peer.read_server(peer).responses[3]
    end
  end

  defp chunks(<<chunk::binary-size(16_384), rest::binary>>, 16_384) when rest != "",
    do: [chunk | chunks(rest, 16_384)]

  defp chunks(last, _), do: [last]

  describe "stats" do
    test "counters move with what was received and sent" do
      peer = Peer.connect(max_concurrent_streams: 1)
      s0 = Engine.stats(engine(peer))
      assert s0.frames_sent.settings == 1 and s0.frames_sent.window_update == 1
      assert s0.window_update_frames == %{connection: 1, stream: 0}

      peer =
        peer
        |> Peer.open(1, post(nil), :open)
        |> Peer.open(3, get())
        |> Peer.write([
          Frame.encode(%Frame.Ping{data: "12345678"}),
          Frame.encode(%Frame.Priority{stream_id: 1, dependency: 0, weight: 3}),
          Frame.encode(%Frame.WindowUpdate{stream_id: 0, increment: 100}),
          Frame.encode(%Frame.Unknown{type: 0xEE, payload: "?"}),
          Frame.encode(%Frame.Data{stream_id: 1, data: body(1, 5000)})
        ])

      {peer, events} = Peer.deliver(peer)
      assert [{:headers, 1, _, false}, {:data, 1, _, false}] = events
      s = Engine.stats(engine(peer))

      assert s.frames_received == %{
               s0.frames_received
               | settings: 2,
                 headers: 2,
                 ping: 1,
                 priority: 1,
                 window_update: 1,
                 unknown: 1,
                 data: 1
             }

      assert s.streams_opened == 1
      assert s.streams_refused == 1
      assert s.open_streams == 1
      assert s.data_bytes_received == 5000
      assert s.buffered_bytes == 5000
      assert s.peak_buffered_bytes == 5000

      peer = Peer.read_server(peer)
      assert peer.resets == %{3 => :refused_stream}
      s = Engine.stats(engine(peer))
      # The PING ACK, and the round-trip probes of adaptive windows, if one was due.
      assert s.frames_sent.ping == 1 + s.pings_sent
      assert s.frames_sent.rst_stream == 1
      assert s.streams_reset_by_us == 0

      # 200 KiB consumed out of a 256 KiB stream window passes the 50% threshold: one stream
      # credit; the connection (1 MiB) is not due yet.
      more =
        for c <- chunks(body(1, 200 * @kib - 5000), 16_384),
            do: Frame.encode(%Frame.Data{stream_id: 1, data: c})

      {peer, _} = peer |> Peer.write(more) |> Peer.deliver()
      :ok = Engine.consume(engine(peer), 1, 200 * @kib)
      peer = Peer.read_server(peer)
      assert peer.wu == %{connection: 1, stream: 1}

      s = Engine.stats(engine(peer))
      assert s.window_update_frames == %{connection: 1, stream: 1}
      assert s.flushes_with_window_updates == 1
      # credited_bytes counts connection credit: so far only the preface's.
      assert s.credited_bytes == @mib - 65_535
      assert s.buffered_bytes == 0
    end

    test "a send to a stream the peer reset is {:error, :closed} and is counted" do
      peer = Peer.connect() |> Peer.open(1, get())
      {peer, [{:headers, 1, _, true}]} = Peer.deliver(peer)
      peer = Peer.write(peer, Frame.encode(%Frame.RstStream{stream_id: 1, error_code: :cancel}))
      assert {_peer, [{:stream_reset, 1, :cancel}]} = Peer.deliver(peer)

      assert {:error, :closed} = Engine.send_headers(engine(peer), 1, [{":status", "200"}], false)
      assert {:error, :closed} = Engine.send_data(engine(peer), 1, "late", true)
      assert :ok = Engine.reset_stream(engine(peer), 1, :cancel)

      s = Engine.stats(engine(peer))
      assert s.writes_to_closed_streams == 2
      assert s.streams_reset_by_peer == 1
    end
  end

  describe "misuse raises ArgumentError" do
    setup do
      peer =
        Peer.connect()
        |> Peer.open(1, post(nil), :open)
        |> Peer.write(Frame.encode(%Frame.Data{stream_id: 1, data: "abc"}))

      {peer, _} = Peer.deliver(peer)
      %{engine: engine(peer)}
    end

    test "consume", %{engine: engine} do
      assert_raise ArgumentError, ~r/more bytes than were received/, fn ->
        Engine.consume(engine, 1, 4)
      end

      assert :ok = Engine.consume(engine, 1, 3)
      # A stream the engine does not track is a no-op.
      assert :ok = Engine.consume(engine, 99, 10)
    end

    test "send_headers and send_data", %{engine: engine} do
      assert_raise ArgumentError, ~r/no such stream/, fn ->
        Engine.send_headers(engine, 2, [{":status", "200"}], true)
      end

      assert_raise ArgumentError, ~r/no such stream/, fn ->
        Engine.send_headers(engine, 5, [{":status", "200"}], true)
      end

      assert_raise ArgumentError, ~r/:status/, fn ->
        Engine.send_headers(engine, 1, [{"x", "y"}], true)
      end

      assert_raise ArgumentError, ~r/:status/, fn ->
        Engine.send_headers(engine, 1, [{":status", "20"}], true)
      end

      assert_raise ArgumentError, ~r/headers must be sent before/, fn ->
        Engine.send_data(engine, 1, "x", true)
      end

      assert_raise ArgumentError, fn ->
        Engine.send_headers(engine, 1, [{":status", 200}], true)
      end

      assert :ok = Engine.send_headers(engine, 1, [{":status", "200"}], false)
      assert_raise ArgumentError, ~r/iodata/, fn -> Engine.send_data(engine, 1, :body, false) end
      assert {:ok, 0} = Engine.send_data(engine, 1, "done", true)

      assert_raise ArgumentError, ~r/already ended/, fn ->
        Engine.send_data(engine, 1, "more", true)
      end
    end

    test "reset_stream and goaway", %{engine: engine} do
      assert_raise ArgumentError, ~r/no such stream/, fn ->
        Engine.reset_stream(engine, 0, :cancel)
      end

      assert_raise ArgumentError, fn -> Engine.reset_stream(engine, 1, :not_a_code) end
      assert_raise ArgumentError, fn -> Engine.goaway(engine, :not_a_code, "") end
    end
  end
end
