defmodule H2Flow.Cowboy.StreamHandlerNoCowboyTest do
  # Without Cowboy: cowboy_opts/1 (doctest), and the scheduler's one-call functions for hosts
  # that see every DATA frame and read (they must agree with the separate calls).
  use ExUnit.Case, async: true

  alias H2Flow.Scheduler

  doctest H2Flow.Cowboy.StreamHandler

  test "data_and_flush/5 and consume_and_flush/3 agree with data/5, consume/3 and flush/1" do
    seed = ExUnit.configuration()[:seed]
    :rand.seed(:exsss, {seed, 7, 11})
    opts = [initial_connection_window: 262_144, initial_stream_window: 65_535]
    {:ok, one} = Scheduler.new(opts)
    {:ok, many} = Scheduler.new(opts)

    for id <- [1, 3, 5], s <- [one, many], do: :ok = Scheduler.open_stream(s, id, nil, false)

    Enum.reduce(1..300, %{1 => 0, 3 => 0, 5 => 0}, fn _, buffered ->
      id = Enum.random([1, 3, 5])
      room = min(Scheduler.stream_remaining(many, id), Scheduler.info(many).connection_remaining)
      len = if room > 0, do: :rand.uniform(min(room, 16_384)), else: 0

      if :rand.uniform(2) == 1 do
        take = if :rand.uniform(2) == 1, do: buffered[id] + len

        {result, credits} = Scheduler.data_and_flush(one, id, len, false, take)
        assert result == Scheduler.data(many, id, len, false)
        if take, do: :ok = Scheduler.consume(many, id, take)
        assert credits == Scheduler.flush(many)
        %{buffered | id => if(take, do: 0, else: buffered[id] + len)}
      else
        assert Scheduler.consume_and_flush(one, id, buffered[id]) ==
                 (Scheduler.consume(many, id, buffered[id]) && Scheduler.flush(many))

        %{buffered | id => 0}
      end
    end)

    assert Scheduler.info(one) == Scheduler.info(many)
  end
end

defmodule H2Flow.CowboyTest do
  # H2Flow.Cowboy.StreamHandler inside a real Cowboy 2.13 (cowlib 2.14, ranch 1.8), found through
  # COWBOY_EBIN (test_helper.exs), against a client over a socket. The scenarios of issue 7 also
  # run with Cowboy alone, as a control that they provoke what the handler is for.
  use ExUnit.Case, async: false

  alias H2Flow.Cowboy.StreamHandler
  alias H2Flow.Test.CowboyClient
  alias H2Flow.Test.H2Client

  @moduletag :cowboy
  @moduletag timeout: 300_000

  # Without COWBOY_EBIN these tests are excluded, and Cowboy's modules are not there to check.
  @compile {:no_warn_undefined, [:cowboy, :cowboy_router, :ranch]}

  defmodule Reader do
    @moduledoc false
    # Reads the whole body (after `:sleep` ms, `:length` bytes per read_body) and answers with
    # its size and CRC-32; `:report` gets them too.
    @compile {:no_warn_undefined, [:cowboy_req]}

    def init(req, opts) do
      if opts[:sleep], do: Process.sleep(opts.sleep)
      read_opts = if opts[:length], do: %{length: opts.length, period: 60_000}, else: %{}
      {size, crc, req} = read(req, read_opts, 0, 0)
      if opts[:report], do: send(opts.report, {:body, size, crc})
      {:ok, :cowboy_req.reply(200, %{}, "#{size}:#{crc}", req), opts}
    end

    defp read(req, opts, size, crc) do
      case :cowboy_req.read_body(req, opts) do
        {:ok, data, req} -> {size + byte_size(data), :erlang.crc32(crc, data), req}
        {:more, data, req} -> read(req, opts, size + byte_size(data), :erlang.crc32(crc, data))
      end
    end
  end

  defmodule Ignore do
    @moduledoc false
    # Answers without reading the body.
    @compile {:no_warn_undefined, [:cowboy_req]}
    def init(req, opts), do: {:ok, :cowboy_req.reply(200, %{}, "ignored", req), opts}
  end

  # cowboy_opts/1's connection window, and the one of the tight setting below.
  @default_budget 8_388_608
  @budget 1_048_576

  # Cowboy's frame-rate flood limit (10,000 frames per 10 s) would end the long runs.
  @base %{protocols: [:http2], max_received_frame_rate: {1_000_000, 1_000}}

  setup_all do
    {:ok, _} = Application.ensure_all_started(:cowboy)
    :ok
  end

  defp start(opts) do
    ref = {__MODULE__, make_ref()}

    routes = [
      {"/read", Reader, %{}},
      {"/sleep", Reader, %{sleep: 500}},
      {"/small", Reader, %{length: 10_000}},
      {"/report", Reader, %{report: self()}},
      {"/ignore", Ignore, %{}}
    ]

    env = %{env: %{dispatch: :cowboy_router.compile([{:_, routes}])}}
    {:ok, _} = :cowboy.start_clear(ref, [port: 0], @base |> Map.merge(env) |> Map.merge(opts))
    on_exit(fn -> :cowboy.stop_listener(ref) end)
    {ref, :ranch.get_port(ref)}
  end

  defp alone(opts \\ %{}), do: start(opts)
  defp handled(opts \\ %{}), do: start(StreamHandler.cowboy_opts(opts))

  # A 1 MiB bound with 256 KiB stream windows: bodies larger than windows and budget, so the
  # handler has to carry connection credit between streams.
  defp tight(opts \\ %{}) do
    handled(
      Map.merge(
        %{initial_connection_window_size: @budget, initial_stream_window_size: 262_144},
        opts
      )
    )
  end

  defp run!({_ref, port}, requests, opts \\ []) do
    case CowboyClient.run(port, requests, opts) do
      %{} = result -> result
      error -> flunk("the client stopped: #{inspect(error, limit: 20)}")
    end
  end

  defp total(result), do: result.window_updates.connection + result.window_updates.stream

  defp assert_handled(result, max_window_updates, excess \\ :none, budget \\ @budget) do
    assert result.bodies_ok
    assert result.max_connection_window <= budget
    assert total(result) <= max_window_updates, inspect(result.window_updates)

    case excess do
      :none -> assert result.excess_stream_credit == []
      :carrying -> assert_carrying(result.excess_stream_credit, 0, budget)
    end
  end

  # The one case where a stream gets credit past its body (see the moduledoc): a stream
  # WINDOW_UPDATE that carries connection credit, written with it, or that Cowboy delayed until
  # the stream's window fell to its threshold, after the client had sent the whole body. Each
  # goes past the body by at most the connection window. With a stream margin, Cowboy's least
  # raise of a window is the margin + 1: up to that much past the body.
  defp assert_carrying(excess, margin, budget \\ @budget) do
    for e <- excess do
      assert e.with_connection_credit or e.left == 0 or e.window - e.left <= margin + 1,
             inspect(e)

      assert e.window - e.left <= budget, inspect(e)
    end
  end

  describe "the scenarios of issue 7" do
    test "64 × 16 KiB POSTs to a handler that sleeps 500 ms, then reads" do
      requests = List.duplicate({"/sleep", 16_384}, 64)

      # Cowboy alone sends up to 62 here, fewer when bodies arrive before their readers read.
      assert run!(alone(), requests).bodies_ok

      assert_handled(run!(handled(), requests), 5, :none, @default_budget)
    end

    test "1,000 × 16 KiB POSTs on one connection, 100 streams at a time" do
      requests = List.duplicate({"/read", 16_384}, 1_000)

      control = run!(alone(%{max_concurrent_streams: 100}), requests)
      assert control.bodies_ok and total(control) > 40

      result = run!(handled(%{max_concurrent_streams: 100}), requests)
      assert_handled(result, 40, :none, @default_budget)
    end

    test "steady-state 16 KiB POSTs with h2load: at most 40 WINDOW_UPDATEs per 1,000 requests" do
      h2load = System.find_executable("h2load") || flunk("h2load is not on PATH")

      path =
        Path.join(System.tmp_dir!(), "h2flow-cowboy-16k-#{System.unique_integer([:positive])}")

      File.write!(path, CowboyClient.body(1, 16_384))
      on_exit(fn -> File.rm(path) end)

      per_thousand = fn server ->
        {_ref, port} = server
        args = ~w(-n 10000 -c 10 -m 100 -d #{path}) ++ ["http://127.0.0.1:#{port}/read"]
        {count, {out, status}} = count_window_updates(fn -> System.cmd(h2load, args) end)
        assert status == 0 and out =~ "10000 succeeded, 0 failed", out
        count * 1000 / 10_000
      end

      assert per_thousand.(alone()) > 40
      assert per_thousand.(handled()) <= 40
    end

    test "one 256 MiB upload is read in full" do
      size = 256 * 1_048_576
      result = run!(handled(), [{"/report", size}], timeout: 30_000)
      assert_received {:body, ^size, crc}
      assert crc == :erlang.crc32(CowboyClient.body(0, size))
      assert_handled(result, 400, :carrying, @default_budget)
    end
  end

  describe "no body stalls" do
    test "bodies larger than the stream window, read 10,000 bytes at a time" do
      assert_handled(run!(tight(), List.duplicate({"/small", 300_000}, 8)), 200, :carrying)
    end

    test "bodies without a content-length" do
      requests = List.duplicate({"/sleep", 40_000, [content_length: false]}, 64)
      assert_handled(run!(tight(), requests), 10)
    end

    test "a read that asks for more than the connection window (read_body's 8 MB default)" do
      assert_handled(run!(tight(), List.duplicate({"/read", 4_000_000}, 3)), 300, :carrying)
    end

    test "a large upload beside many small ones" do
      requests = [{"/read", 8_000_000} | List.duplicate({"/read", 16_384}, 200)]
      assert_handled(run!(tight(), requests), 200, :carrying)
    end

    test "handlers that answer before reading the body, then others that read" do
      # DATA in flight on the streams Cowboy resets is charged to the connection window without
      # any handler seeing it. The handler assumes the worst (each such stream's window) until
      # that DATA has surely arrived, so the readers still get their bodies, and the connection
      # window may exceed the bound by what was set aside (see the moduledoc).
      requests = List.duplicate({"/ignore", 300_000}, 20) ++ List.duplicate({"/read", 16_384}, 50)
      result = run!(tight(), requests)
      assert length(result.statuses) == 70 and Enum.all?(result.statuses, &(&1 == 200))
      assert result.max_connection_window <= @budget + 20 * 262_144
    end

    test "Cowboy's default window options" do
      server = start(%{stream_handlers: [StreamHandler, :cowboy_stream_h]})
      # Cowboy's 64 KiB margins make every raise of a window at least 64 KiB: stream credit
      # then goes past bodies more often, in the same carrying form.
      result = run!(server, List.duplicate({"/sleep", 16_384}, 64))
      assert result.bodies_ok and total(result) <= 20
      assert_carrying(result.excess_stream_credit, 65_535)

      result = run!(server, List.duplicate({"/read", 300_000}, 20))
      assert result.bodies_ok
      assert_carrying(result.excess_stream_credit, 65_535)
    end
  end

  describe "the handler's mirror of Cowboy's windows" do
    # cowboy_http2's #state{} and cow_http2_machine's #http2_machine{} of Cowboy 2.13 and
    # cowlib 2.14: the connection demand is field 20, the machine field 13, its window field 10.
    # Both views are taken inside the connection process, between two of its messages.
    defp views(ref) do
      assert {~c"2.13.0", ~c"2.14.0"} ==
               {Application.spec(:cowboy, :vsn), Application.spec(:cowlib, :vsn)},
             "the record layout below is that of Cowboy 2.13.0 and cowlib 2.14.0"

      # The previous scenario's connection, closed by its client, may still be listed a moment.
      [pid] =
        H2Flow.Test.ServerHelpers.eventually(fn ->
          live = Enum.filter(:ranch.procs(ref, :connections), &Process.alive?/1)
          match?([_], live) && live
        end)

      test = self()

      :sys.replace_state(pid, fn {state, _buffer} = misc ->
        real = %{demand: elem(state, 20), window: elem(elem(state, 13), 10)}
        send(test, {:views, real, StreamHandler.connection_info(self())})
        misc
      end)

      assert_received {:views, real, mirror}
      {real, mirror}
    end

    defp assert_mirror(ref) do
      {real, mirror} = views(ref)
      assert Map.take(mirror, [:demand, :window]) == real
      assert mirror.window_max == real.window
    end

    test "matches cowboy_http2's demand and window after each scenario" do
      {ref, _port} = server = tight()

      for requests <- [
            List.duplicate({"/sleep", 16_384}, 64),
            List.duplicate({"/read", 16_384}, 300),
            [{"/read", 3_000_000} | List.duplicate({"/read", 16_384}, 50)],
            List.duplicate({"/small", 100_000, [content_length: false]}, 10)
          ] do
        run!(server, requests, on_done: fn -> assert_mirror(ref) end)
      end
    end

    test "a stream the client resets in the middle of its body" do
      {ref, port} = tight()
      {:ok, conn} = H2Client.connect("127.0.0.1", port)
      :ok = H2Client.send_preface(conn)

      request = fn id, path, length ->
        pseudo = [{":method", "POST"}, {":scheme", "http"}, {":authority", "localhost"}]
        headers = pseudo ++ [{":path", path}, {"content-length", "#{length}"}]
        :ok = H2Client.send_headers(conn, id, headers, false)
      end

      request.(1, "/sleep", 100_000)
      :ok = H2Client.send_data(conn, 1, CowboyClient.body(0, 16_384), false)
      :ok = H2Client.send_rst_stream(conn, 1, :cancel)
      request.(3, "/read", 16_384)
      :ok = H2Client.send_data(conn, 3, CowboyClient.body(1, 16_384), true)

      assert {:ok, conn, %{status: 200, body: body}} = H2Client.read_response(conn, 3)
      assert body == CowboyClient.expected(1, 16_384)
      assert_mirror(ref)
      H2Client.close(conn)
    end
  end

  test "HTTP/1.1 streams pass through" do
    {_ref, port} = handled(%{protocols: [:http, :http2]})
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
    body = CowboyClient.body(2, 50_000)

    :ok =
      :gen_tcp.send(socket, [
        "POST /read HTTP/1.1\r\nhost: localhost\r\ncontent-length: 50000\r\n\r\n",
        body
      ])

    assert {:ok, response} = recv_until(socket, CowboyClient.expected(2, 50_000), "")
    assert response =~ "HTTP/1.1 200"
    :gen_tcp.close(socket)
  end

  defp recv_until(socket, marker, acc) do
    if String.contains?(acc, marker) do
      {:ok, acc}
    else
      with {:ok, data} <- :gen_tcp.recv(socket, 0, 5000),
           do: recv_until(socket, marker, acc <> data)
    end
  end

  # cow_http2:window_update/2 builds every WINDOW_UPDATE Cowboy sends (window_update/1 calls it).
  defp count_window_updates(fun) do
    mfa = {:cow_http2, :window_update, 2}
    {:module, :cow_http2} = Code.ensure_loaded(:cow_http2)
    :erlang.trace_pattern(mfa, true, [:call_count])

    try do
      result = fun.()
      {:call_count, count} = :erlang.trace_info(mfa, :call_count)
      {count, result}
    after
      :erlang.trace_pattern(mfa, false, [:call_count])
    end
  end
end
