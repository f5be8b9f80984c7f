defmodule H2Flow.ReadBodyTest do
  # H2Flow.Req.read_body/2 as cowboy_req:read_body/2 users write it: the README's handler and
  # the H2Flow.Req moduledoc's, compiled from the text as written, against bodies around every
  # window boundary up to the default :length, over a real socket with curl and with h2load;
  # then :length and :period one by one with the raw test client.
  use ExUnit.Case, async: false

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @readme Path.expand("../../README.md", __DIR__)
  @sizes [0, 1, 131_071, 131_072, 131_073, 262_143, 262_144, 262_145, 1_000_000, 5_000_000] ++
           [8_000_000]

  # The README's "A handler" block, with its port 8080 made 0.
  defp readme_block do
    [_, rest] = String.split(File.read!(@readme), "## A handler\n", parts: 2)
    [_, code, _] = String.split(rest, ~r/^```.*\n/m, parts: 3)
    assert code =~ "port: 8080"
    String.replace(code, "port: 8080", "port: 0")
  end

  # The example of H2Flow.Req's moduledoc (a handler's init/2 and its helper), in a module.
  defp req_moduledoc_handler do
    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(Req)
    [_, code] = Regex.run(~r/\n\n((?:    .*\n|\n)+)/, doc)

    code =
      code |> String.split("\n") |> Enum.map_join("\n", &String.replace_prefix(&1, "    ", ""))

    assert code =~ "length: 1_000_000"

    Code.compile_string("""
    defmodule H2Flow.ReadBodyTest.ReqDoc do
      @behaviour H2Flow.Handler
      #{code}
    end
    """)

    H2Flow.ReadBodyTest.ReqDoc
  end

  defp body_file(dir, size) do
    path = Path.join(dir, "body-#{size}")
    File.write!(path, :binary.copy("r", size))
    path
  end

  defp curl(port, file, extra \\ []) do
    args =
      ["-sS", "--http2-prior-knowledge", "--data-binary", "@" <> file] ++
        extra ++ ["http://127.0.0.1:#{port}/"]

    {out, 0} = System.cmd("curl", args)
    out
  end

  # h2load cannot send an empty body (it maps the file): curl covers 0 bytes.
  defp h2load(_port, _file, _n, 0), do: :ok

  defp h2load(port, file, n, _size) do
    h2load = System.find_executable("h2load") || flunk("h2load is not on PATH")
    args = ["-n", "#{n}", "-c", "1", "-m", "2", "-d", file, "http://127.0.0.1:#{port}/"]
    {out, 0} = System.cmd(h2load, args, stderr_to_stdout: true)
    assert out =~ ~r/status codes: #{n} 2xx/, out
    out
  end

  @tag :tmp_dir
  @tag timeout: 300_000
  test "the README's handler: 200 and the right size for every body up to 8,000,000 bytes",
       %{tmp_dir: dir} do
    # The whole block runs as written: start, port, stats, stop.
    {_, binding} = Code.eval_string(readme_block())
    refute Process.alive?(binding[:server])

    {:ok, server} = H2Flow.start_link(handler: MyApp.Hello, handler_opts: [], port: 0)
    port = H2Flow.port(server)

    for size <- @sizes do
      file = body_file(dir, size)
      assert curl(port, file) == "got #{size}", "curl, #{size} bytes"
      h2load(port, file, 4, size)
      File.rm!(file)
    end

    stats = H2Flow.stats(server)
    assert stats.handler_crashes == 0
    assert stats.defences_triggered == 0
    H2Flow.stop(server)
  end

  @tag :tmp_dir
  @tag timeout: 300_000
  test "H2Flow.Req's moduledoc example: POST echoes every body, GET streams", %{tmp_dir: dir} do
    handler = req_moduledoc_handler()
    {server, port} = start_server!(fn _ -> :unused end, handler: handler, handler_opts: [])

    for size <- @sizes do
      file = body_file(dir, size)
      out = curl(port, file, ["-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
      assert out == "200 #{size}", "curl, #{size} bytes"
      h2load(port, file, 2, size)
      File.rm!(file)
    end

    {out, 0} = System.cmd("curl", ["-sS", "--http2-prior-knowledge", "http://127.0.0.1:#{port}/"])
    assert out == "hello world"
    assert H2Flow.stats(server).handler_crashes == 0
  end

  describe ":length and :period" do
    setup do
      test = self()

      {server, port} =
        start_server!(fn req ->
          send(test, {:req, self(), req})
          loop(req)
        end)

      %{server: server, conn: connect!(port)}
    end

    # The handler reads as the test says and reports each result.
    defp loop(req) do
      receive do
        {:read, opts, from} ->
          result = Req.read_body(req, opts)

          case result do
            {:error, _} = e ->
              send(from, {:read, e})
              req

            {status, data, req} ->
              send(from, {:read, {status, data}})
              loop(req)
          end

        :reply ->
          Req.reply(200, req)
      end
    end

    defp open(conn) do
      :ok =
        H2Client.send_headers(
          conn,
          1,
          [{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}],
          false
        )

      assert_receive {:req, handler, _req}, 5_000
      handler
    end

    defp read(handler, opts) do
      send(handler, {:read, opts, self()})
      assert_receive {:read, result}, 20_000
      result
    end

    test "a read returns at :length or at the end, with everything that had arrived", %{
      conn: conn
    } do
      handler = open(conn)
      :ok = H2Client.send_data(conn, 1, :binary.copy("a", 1000), false)
      {conn, _} = sync!(conn)
      # 1,000 bytes arrived: a read of 100 returns them all (as Cowboy's does).
      assert {:more, data} = read(handler, length: 100)
      assert byte_size(data) == 1000
      # A read of 3,000 returns once it has 3,000.
      task = Task.async(fn -> read(handler, length: 3000) end)
      :ok = H2Client.send_data(conn, 1, :binary.copy("b", 2000), false)
      refute Task.yield(task, 200)
      :ok = H2Client.send_data(conn, 1, :binary.copy("c", 2000), false)
      assert {:more, data} = Task.await(task, 10_000)
      assert byte_size(data) >= 3000 and data =~ ~r/^b+c+$/
      # The end of the body: :ok with the rest, then :ok with "" for ever.
      :ok = H2Client.send_data(conn, 1, "end", true)
      assert {:ok, rest} = read(handler, length: 1_000_000)
      assert byte_size(data) + byte_size(rest) == 4003
      assert {:ok, ""} = read(handler, [])
      assert {:ok, ""} = read(handler, length: 0)
      send(handler, :reply)
      assert {:ok, _, %{status: 200}} = H2Client.read_response(conn, 1)
    end

    test "a read returns what arrived when :period expires, \"\" if nothing did", %{conn: conn} do
      handler = open(conn)
      assert {:more, ""} = read(handler, period: 100)
      :ok = H2Client.send_data(conn, 1, "some", false)
      {conn, _} = sync!(conn)
      assert {:more, "some"} = read(handler, period: 100)
      # A read whose period has not expired keeps waiting for its length.
      task = Task.async(fn -> read(handler, period: :infinity, length: 10) end)
      refute Task.yield(task, 300)
      :ok = H2Client.send_data(conn, 1, "0123456789", true)
      assert {:ok, "0123456789"} = Task.await(task, 10_000)
      send(handler, :reply)
      assert {:ok, _, %{status: 200}} = H2Client.read_response(conn, 1)
    end

    test "bad options raise in the handler", %{conn: conn} do
      handler = open(conn)
      ref = Process.monitor(handler)

      log =
        ExUnit.CaptureLog.capture_log(fn ->
          send(handler, {:read, [length: -1], self()})
          assert_receive {:DOWN, ^ref, :process, ^handler, _}, 5_000
          assert {:ok, _, %{status: 500}} = H2Client.read_response(conn, 1)
        end)

      assert log =~ ":length must be a non-negative integer"
    end
  end
end
