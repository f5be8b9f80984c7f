defmodule H2Flow.Bench.NifRecv do
  @moduledoc false
  # Times single H2Flow.Engine.recv/2 calls on fixed-size reads of a client's byte stream, as
  # the connection process makes them; answering, consuming and flushing happen between calls,
  # untimed. Frames straddle reads, as they do on a socket.

  @doc false
  @spec run([pos_integer()], pos_integer()) :: %{pos_integer() => map()}
  def run(sizes, samples) do
    stream = client_stream(4 * 1024 * 1024)
    Map.new(sizes, fn size -> {size, measure(stream, size, samples)} end)
  end

  defp measure(stream, size, samples) do
    reads = for <<read::binary-size(size) <- stream>>, do: read
    calls = rounds(reads, samples, [])
    events = calls |> Enum.map(&elem(&1, 1)) |> Enum.sum()

    sorted =
      calls
      |> Enum.map(&:erlang.convert_time_unit(elem(&1, 0), :native, :nanosecond))
      |> Enum.sort()

    n = length(sorted)
    us = fn ns -> ns / 1_000 end

    %{
      samples: n,
      median_us: us.(Enum.at(sorted, div(n, 2))),
      p99_us: us.(Enum.at(sorted, ceil(n * 0.99) - 1)),
      mean_us: us.(Enum.sum(sorted) / n),
      max_us: us.(List.last(sorted)),
      events: events / n
    }
  end

  # One connection per round over the whole stream, until `samples` calls were timed: {time,
  # events returned} per call. The first read (the preface) is not timed: it is not a
  # steady-state call.
  defp rounds(_reads, samples, calls) when length(calls) >= samples,
    do: Enum.take(calls, samples)

  defp rounds([first | rest], samples, calls) do
    {:ok, engine} = H2Flow.Engine.new()
    _ = H2Flow.Engine.flush(engine)
    {:ok, evs} = H2Flow.Engine.recv(engine, first)
    serve(engine, evs)

    calls =
      Enum.reduce(rest, calls, fn read, calls ->
        t0 = :erlang.monotonic_time()
        result = H2Flow.Engine.recv(engine, read)
        t1 = :erlang.monotonic_time()
        {:ok, evs} = result
        serve(engine, evs)
        [{t1 - t0, length(evs)} | calls]
      end)

    rounds([first | rest], samples, calls)
  end

  defp serve(engine, events) do
    for event <- events do
      case event do
        {:headers, id, _, true} ->
          :ok = H2Flow.Engine.send_headers(engine, id, [{":status", "200"}], true)

        {:data, id, data, end?} ->
          :ok = H2Flow.Engine.consume(engine, id, byte_size(data))
          if end?, do: :ok = H2Flow.Engine.send_headers(engine, id, [{":status", "200"}], true)

        _ ->
          :ok
      end
    end

    _ = H2Flow.Engine.flush(engine)
  end

  # Preface, SETTINGS, SETTINGS ACK, then requests until `size` bytes: of every 4, 2 GETs, a
  # POST of 4 KiB (one DATA frame) and a POST of 48 KiB (three); a connection WINDOW_UPDATE
  # after every 8th request and a PING after every 32nd.
  defp client_stream(size) do
    head = ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frame(4, 0, 0, ""), frame(4, 1, 0, "")]
    IO.iodata_to_binary([head | requests(0, size - IO.iodata_length(head), [])])
  end

  defp requests(_i, left, acc) when left <= 0, do: Enum.reverse(acc)

  defp requests(i, left, acc) do
    id = 2 * i + 1

    frames =
      case rem(i, 4) do
        r when r in [0, 1] -> [headers(id, "GET", "/assets/#{i}.js", nil)]
        2 -> [headers(id, "POST", "/echo", 4096), data(id, 4096, true)]
        3 -> [headers(id, "POST", "/echo", 49_152) | for(k <- 1..3, do: data(id, 16_384, k == 3))]
      end

    frames = if rem(i, 8) == 7, do: frames ++ [frame(8, 0, 0, <<65_535::32>>)], else: frames
    frames = if rem(i, 32) == 31, do: frames ++ [frame(6, 0, 0, <<i::64>>)], else: frames
    requests(i + 1, left - IO.iodata_length(frames), [frames | acc])
  end

  # A header block of static-table references and literals without indexing (RFC 7541 6.1,
  # 6.2.2), no Huffman: :method, :scheme http, :path, :authority, user-agent, accept.
  defp headers(id, method, path, content_length) do
    fields = [
      if(method == "GET", do: <<0x82>>, else: <<0x83>>),
      <<0x86>>,
      literal(4, path),
      literal(1, "127.0.0.1:8080"),
      literal(58, "h2flow-bench/1.0"),
      literal(19, "*/*"),
      if(content_length, do: literal(28, Integer.to_string(content_length)), else: "")
    ]

    # END_HEADERS, and END_STREAM when there is no body.
    flags = if content_length, do: 0x4, else: 0x5
    frame(1, flags, id, IO.iodata_to_binary(fields))
  end

  defp data(id, size, end?), do: frame(0, if(end?, do: 1, else: 0), id, :binary.copy("x", size))

  defp literal(index, value) when index < 15, do: [<<index>>, string(value)]
  defp literal(index, value), do: [<<15, index - 15>>, string(value)]

  defp string(value) when byte_size(value) < 127, do: [<<byte_size(value)>>, value]

  defp frame(type, flags, id, payload),
    do: [<<byte_size(payload)::24, type::8, flags::8, 0::1, id::31>>, payload]
end
