defmodule H2Flow.PlugFlowTest do
  # A Plug on h2flow keeps h2flow's bounds: send_file and chunked responses in bounded memory,
  # the concurrency limit, and the WINDOW_UPDATE counts of the native handler path, over real
  # sockets (the raw client, curl, h2load, python-hyper's h2). Real Plug (PLUG_EBIN).
  #
  # Not async: the send_file test samples the VM's binary memory, which other tests would move.
  use ExUnit.Case, async: false

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Test.H2Client

  @moduletag :plug
  @moduletag timeout: 180_000

  @kib 1024

  defmodule App do
    @moduledoc false
    # The test's plug: one route per scenario; `opts` is the test process.
    alias Plug.Conn

    # Without PLUG_EBIN these tests are excluded, and Plug's modules are not there to check.
    @compile {:no_warn_undefined, Plug.Conn}

    def init(test), do: test

    def call(conn, test), do: route(conn.path_info, conn, test)

    defp route(["file"], conn, _test) do
      %{"path" => path} = Conn.fetch_query_params(conn).query_params
      Conn.send_file(conn, 200, path)
    end

    defp route(["chunks", n], conn, test) do
      piece = :binary.copy("c", 16 * 1024)
      conn = Conn.send_chunked(conn, 200)

      Enum.reduce(1..String.to_integer(n), conn, fn i, conn ->
        {:ok, conn} = Conn.chunk(conn, piece)
        send(test, {:sent, i})
        conn
      end)
    end

    # Waits for the test's :go, then reads the body (a plug that is busy before it reads).
    defp route(["hold"], conn, test) do
      {_, adapter} = conn.adapter
      H2Flow.Test.ServerHelpers.wait_for_go(test, adapter.req)
      {:ok, body, conn} = Conn.read_body(conn)
      Conn.send_resp(conn, 200, "#{byte_size(body)}")
    end

    defp route(["slow-read"], conn, _test) do
      Process.sleep(500)
      {:ok, body, conn} = Conn.read_body(conn)
      Conn.send_resp(conn, 200, "#{byte_size(body)}")
    end

    defp route(["echo"], conn, _test) do
      {:ok, body, conn} = Conn.read_body(conn)
      Conn.send_resp(conn, 200, "#{byte_size(body)}")
    end

    defp route(_, conn, _test), do: Conn.send_resp(conn, 200, "hello")
  end

  defp start!(opts \\ []) do
    opts = [plug: {App, self()}, port: 0, ip: {127, 0, 0, 1}] ++ opts
    server = start_supervised!({H2Flow, opts})
    {server, H2Flow.port(server)}
  end

  @tag :tmp_dir
  test "send_file of 100 MB: the file arrives whole; memory stays bounded", %{tmp_dir: dir} do
    {server, port} = start!()
    path = Path.join(dir, "100mb")

    File.open!(path, [:write, :raw, :binary], fn file ->
      for i <- 1..100, do: :ok = IO.binwrite(file, :binary.copy(<<i>>, 1_000_000))
    end)

    out = Path.join(dir, "received")
    url = "http://127.0.0.1:#{port}/file?path=#{URI.encode_www_form(path)}"
    sampler = sample_binary_memory()
    {"", 0} = System.cmd("curl", ["-sS", "--http2-prior-knowledge", "-o", out, url])
    peak = stop_sampler(sampler)

    assert File.stat!(out).size == 100_000_000
    assert {_, 0} = System.cmd("cmp", [path, out])

    # The plug holds one 128 KiB piece of the file at a time, the engine at most its send
    # queue (64 KiB) plus the piece being handed over.
    stats = H2Flow.stats(server)
    IO.puts("\nsend_file 100 MB: VM binary memory peak +#{div(peak, @kib)} KiB")
    assert stats.peak_queued_send_bytes <= 64 * @kib + 128 * @kib
    assert peak < 16 * 1_048_576
  end

  test "send_chunked to a client that does not read: the plug blocks in chunk/2, memory " <>
         "bounded; it resumes when the client reads" do
    {server, port} = start!()
    conn = connect!(port, initial_window_size: 0)
    {:ok, conn, id} = H2Client.request(conn, "GET", "/chunks/640")

    for i <- 1..3, do: assert_receive({:sent, ^i}, 5_000)
    eventually(fn -> stat(server, :queued_send_bytes) == 64 * @kib end)
    [handler] = handlers(connection!(server))

    # Blocked in the call to the connection; the one message waiting is Plug's notice that a
    # response was sent (Plug.Conn.Adapter asks adapters for it).
    # (Eventually: it may still be between its send and its receive, preempted.)
    eventually(fn ->
      Process.info(handler, [:status, :current_function, :messages]) == [
        status: :waiting,
        current_function: {H2Flow.Req, :call, 2},
        messages: [{:plug_conn, :sent}]
      ]
    end)

    {:memory, memory} = Process.info(handler, :memory)
    assert memory < 256 * @kib
    refute_received {:sent, 5}

    :ok = H2Client.send_settings(conn, initial_window_size: 2_147_483_647)
    :ok = H2Client.send_window_update(conn, 0, 2_147_483_647 - 65_535)
    assert {:ok, _conn, %{status: 200, body: body}} = H2Client.read_response(conn, id, 30_000)
    assert byte_size(body) == 640 * 16 * @kib
    assert_receive {:sent, 640}, 5_000
    assert stat(server, :peak_queued_send_bytes) < 80 * @kib
  end

  test "300 streams at once against max_concurrent_streams 100: 100 answered, 200 refused, " <>
         "the connection serves on" do
    {server, port} = start!(max_concurrent_streams: 100)
    {:ok, conn} = H2Client.connect("127.0.0.1", port)
    :ok = H2Client.send_preface(conn)

    {ids, conn} =
      Enum.map_reduce(1..300, conn, fn _, conn ->
        {:ok, conn, id} = H2Client.request(conn, "GET", "/hold")
        {id, conn}
      end)

    handlers = waiting(100)
    assert Enum.map(handlers, fn {_, req} -> req.stream_id end) == Enum.take(ids, 100)
    eventually(fn -> stat(server, :streams_refused) == 200 end)
    for {pid, _} <- handlers, do: send(pid, :go)

    conn =
      Enum.reduce(ids, conn, fn id, conn ->
        if id <= 199 do
          assert {:ok, conn, %{status: 200, body: "0"}} = H2Client.read_response(conn, id)
          conn
        else
          assert {:error, conn, {:rst_stream, :refused_stream}} = H2Client.read_response(conn, id)
          conn
        end
      end)

    {:ok, conn, 601} = H2Client.request(conn, "GET", "/after")
    assert {:ok, _conn, %{status: 200, body: "hello"}} = H2Client.read_response(conn, 601)

    assert %{streams_refused: 200, peak_open_streams: 100, handler_crashes: 0} =
             H2Flow.stats(server)
  end

  describe "WINDOW_UPDATEs" do
    test "64 × 16 KiB POSTs to a plug that reads late: ≤ 2 WINDOW_UPDATEs in ≤ 2 writes" do
      {server, port} = start!()
      conn = connect!(port)
      body = :binary.copy("p", 16 * @kib)

      {conn, ids} =
        Enum.reduce(1..64, {conn, []}, fn _, {conn, ids} ->
          {:ok, conn, id} =
            H2Client.request(conn, "POST", "/hold", [{"content-length", "16384"}], body)

          {conn, [id | ids]}
        end)

      handlers = waiting(64)
      eventually(fn -> stat(server, :buffered_bytes) == 64 * 16 * @kib end)
      for {pid, _} <- handlers, do: send(pid, :go)

      conn =
        Enum.reduce(Enum.reverse(ids), conn, fn id, conn ->
          assert {:ok, conn, %{status: 200, body: "16384"}} = H2Client.read_response(conn, id)
          conn
        end)

      {conn, _} = sync!(conn)
      client = H2Client.stats(conn)
      updates = client.window_updates.connection + client.window_updates.stream
      IO.puts("\nPlug, 64 × 16 KiB read late: #{updates} WINDOW_UPDATE frames")
      assert updates <= 2
      assert client.reads_with_window_update <= 2
      assert H2Flow.stats(server).flushes_with_window_updates <= 2
    end

    test "python-hyper h2, 64 × 16 KiB to a plug that sleeps 500 ms, then reads: ≤ 2" do
      {server, port} = start!()
      result = python!("posts", port, [64, 16_384, "/slow-read"])
      assert Enum.all?(Map.values(result.responses), &match?(%{status: 200, body: 5}, &1))
      assert map_size(result.responses) == 64
      assert result.window_updates.connection + result.window_updates.stream <= 2
      assert %{data_bytes_received: 1_048_576, handler_crashes: 0} = H2Flow.stats(server)
    end

    @tag :tmp_dir
    test "h2load, 5,000 POSTs of 16 KiB: ≤ 40 WINDOW_UPDATEs per 1,000; and 5,000 GETs",
         %{tmp_dir: dir} do
      {server, port} = start!()
      file = Path.join(dir, "post")
      File.write!(file, :binary.copy("h", 16_384))
      url = "http://127.0.0.1:#{port}"

      out = h2load(["-n", "5000", "-c", "10", "-m", "100", "-d", file, url <> "/echo"])
      assert out =~ "5000 succeeded, 0 failed"
      %{window_update_frames: frames} = H2Flow.stats(server)
      per_thousand = (frames.connection + frames.stream) * 1000 / 5000
      IO.puts("Plug, h2load 16 KiB POSTs: #{per_thousand} WINDOW_UPDATEs per 1,000")
      assert per_thousand <= 40

      out = h2load(["-n", "5000", "-c", "10", "-m", "100", url <> "/"])
      assert out =~ "5000 succeeded, 0 failed"
      assert %{handler_crashes: 0, handlers_started: 10_000} = H2Flow.stats(server)
    end
  end

  defp h2load(args) do
    {out, 0} = System.cmd("h2load", args, stderr_to_stdout: true)
    [summary] = Regex.run(~r/finished in .*\n/, out)
    IO.puts("\nh2load (Plug) #{Enum.join(Enum.take(args, 6), " ")}: #{String.trim(summary)}")
    out
  end

  # The peak of :erlang.memory(:binary) above what it was at the start, sampled every 2 ms.
  defp sample_binary_memory do
    base = :erlang.memory(:binary)
    test = self()

    spawn_link(fn ->
      loop = fn loop, peak ->
        receive do
          :stop -> send(test, {:peak, peak - base})
        after
          2 -> loop.(loop, max(peak, :erlang.memory(:binary)))
        end
      end

      loop.(loop, base)
    end)
  end

  defp stop_sampler(pid) do
    send(pid, :stop)
    assert_receive {:peak, peak}, 5_000
    peak
  end
end
