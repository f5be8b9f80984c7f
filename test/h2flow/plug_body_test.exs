defmodule H2Flow.PlugBodyTest do
  # Request bodies through H2Flow.Plug.Adapter (Plug.Conn.read_body/2 and Plug.Parsers), and
  # a plug's errors answered and logged with Plug's conventions; real Plug (PLUG_EBIN).
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Test.H2Client

  @moduletag :plug
  @moduletag :tmp_dir
  @moduletag timeout: 120_000

  # Without PLUG_EBIN these tests are excluded, and Plug's modules are not there to check.
  @compile {:no_warn_undefined, Jason}

  defmodule App do
    @moduledoc false
    # The test's plug: one route per scenario; `opts` is the test process.
    alias Plug.Conn

    @compile {:no_warn_undefined, [Plug.Conn, Plug.Parsers, Plug.BadRequestError]}

    def init(test), do: test

    def call(conn, test), do: route(conn.path_info, Conn.fetch_query_params(conn), test)

    defp route(["read"], conn, test) do
      %{"length" => length, "read_length" => read_length} = conn.query_params
      opts = [length: String.to_integer(length), read_length: String.to_integer(read_length)]
      {pieces, conn} = read_pieces(conn, opts, [])
      send(test, {:pieces, Enum.map(pieces, &byte_size/1)})
      Conn.send_resp(conn, 200, "#{:erlang.crc32(pieces)}")
    end

    defp route(["timeout"], conn, _test) do
      Conn.send_resp(conn, 200, inspect(Conn.read_body(conn, read_timeout: 200)))
    end

    defp route(["parse"], conn, test) do
      json = if conn.query_params["json"], do: [:json], else: []
      length = String.to_integer(Map.get(conn.query_params, "length", "2000000"))

      opts =
        Plug.Parsers.init(
          parsers: [:urlencoded, {:multipart, length: 20_000_000}] ++ json,
          pass: ["*/*"],
          json_decoder: Jason,
          length: length
        )

      conn = Plug.Parsers.call(conn, opts)
      send(test, {:params, summary(conn.body_params)})
      Conn.send_resp(conn, 200, "parsed")
    end

    defp route(["raise"], _conn, _test), do: raise("boom")
    defp route(["throw"], _conn, _test), do: throw(:thrown)
    defp route(["bad_request"], _conn, _test), do: raise(Plug.BadRequestError)
    defp route(["not_sent"], conn, _test), do: conn

    defp route(["raise_after_chunk"], conn, _test) do
      {:ok, _conn} = conn |> Conn.send_chunked(200) |> Conn.chunk("started")
      raise "boom after the response started"
    end

    defp route(["ok"], conn, _test), do: Conn.send_resp(conn, 200, "ok")

    defp read_pieces(conn, opts, acc) do
      case Conn.read_body(conn, opts) do
        {:more, data, conn} -> read_pieces(conn, opts, [data | acc])
        {:ok, data, conn} -> {Enum.reverse([data | acc]), conn}
      end
    end

    # Sizes and checksums instead of the values (uploads are files: their size and CRC).
    defp summary(params) do
      Map.new(params, fn
        {k, %{__struct__: Plug.Upload, path: path, filename: name}} ->
          data = File.read!(path)
          {k, {:upload, name, byte_size(data), :erlang.crc32(data)}}

        {k, v} when is_binary(v) ->
          {k, {byte_size(v), :erlang.crc32(v)}}

        {k, v} ->
          {k, v}
      end)
    end
  end

  setup do
    server = start_supervised!({H2Flow, plug: {App, self()}, port: 0, ip: {127, 0, 0, 1}})
    %{server: server, port: H2Flow.port(server), url: "http://127.0.0.1:#{H2Flow.port(server)}"}
  end

  defp curl(url, args) do
    System.cmd("curl", ["-sS", "-i", "--http2-prior-knowledge"] ++ args ++ [url],
      stderr_to_stdout: true
    )
  end

  describe "Plug.Conn.read_body/2" do
    test "a 1 MB upload read in pieces of at most :length bytes", %{url: url, tmp_dir: dir} do
      body = :crypto.strong_rand_bytes(1_000_000)
      file = Path.join(dir, "body")
      File.write!(file, body)

      {out, 0} =
        curl(url <> "/read?length=100000&read_length=30000", ["--data-binary", "@" <> file])

      assert String.ends_with?(out, "\r\n\r\n#{:erlang.crc32(body)}")
      assert_receive {:pieces, sizes}
      assert Enum.sum(sizes) == 1_000_000
      assert Enum.all?(sizes, &(&1 <= 100_000))
      assert length(sizes) >= 10
    end

    test "a body that came whole with its request is still cut at :length", %{port: port} do
      conn = connect!(port)
      body = :binary.copy("x", 5_000)
      path = "/read?length=1000&read_length=1000"
      {:ok, conn, id} = H2Client.request(conn, "POST", path, [{"content-length", "5000"}], body)
      assert {:ok, _conn, %{status: 200}} = H2Client.read_response(conn, id)
      assert_receive {:pieces, [1000, 1000, 1000, 1000, 1000]}
    end

    test "nothing within :read_timeout: {:error, :timeout}", %{port: port} do
      conn = connect!(port)
      headers = [{"content-length", "10"}]
      :ok = H2Client.send_headers(conn, 1, request_headers(conn, "/timeout") ++ headers, false)

      assert {:ok, _conn, %{status: 200, body: "{:error, :timeout}"}} =
               H2Client.read_response(%{conn | next_stream_id: 3}, 1)
    end
  end

  describe "Plug.Parsers" do
    test "urlencoded, 1 MB", %{url: url, tmp_dir: dir} do
      value = :binary.copy("v", 1_000_000)
      file = Path.join(dir, "form")
      File.write!(file, "a=#{value}&b=two")
      {out, 0} = curl(url <> "/parse", ["--data-binary", "@" <> file])
      assert String.ends_with?(out, "parsed")
      crc = :erlang.crc32(value)
      assert_receive {:params, %{"a" => {1_000_000, ^crc}, "b" => {3, _}}}
    end

    test "multipart with a 10 MB file part", %{url: url, tmp_dir: dir} do
      data = :crypto.strong_rand_bytes(10_000_000)
      file = Path.join(dir, "upload.bin")
      File.write!(file, data)
      {out, 0} = curl(url <> "/parse", ["-F", "name=h2flow", "-F", "file=@" <> file])
      assert String.ends_with?(out, "parsed")
      crc = :erlang.crc32(data)

      assert_receive {:params,
                      %{"name" => {6, _}, "file" => {:upload, "upload.bin", 10_000_000, ^crc}}},
                     10_000
    end

    @tag :jason
    test "JSON, 1 MB", %{url: url, tmp_dir: dir} do
      value = :binary.copy("j", 1_000_000)
      file = Path.join(dir, "json")
      File.write!(file, Jason.encode!(%{"a" => value, "n" => 42}))
      args = ["-H", "content-type: application/json", "--data-binary", "@" <> file]
      {out, 0} = curl(url <> "/parse?json=1", args)
      assert String.ends_with?(out, "parsed")
      crc = :erlang.crc32(value)
      assert_receive {:params, %{"a" => {1_000_000, ^crc}, "n" => 42}}
    end

    test "over its :length: 413, not logged as an error", %{port: port} do
      conn = connect!(port)
      body = "a=" <> :binary.copy("v", 5_000)

      headers = [
        {"content-type", "application/x-www-form-urlencoded"},
        {"content-length", "#{byte_size(body)}"}
      ]

      log =
        capture_log(fn ->
          {:ok, conn, id} = H2Client.request(conn, "POST", "/parse?length=1000", headers, body)
          assert {:ok, _conn, %{status: 413}} = H2Client.read_response(conn, id)
        end)

      refute log =~ "RequestTooLargeError"
    end
  end

  describe "a plug's errors" do
    test "a raise is a 500, logged with the request; a throw too", %{url: url} do
      log =
        capture_log(fn ->
          assert {"HTTP/2 500 \r\n" <> _, 0} = curl(url <> "/raise", [])
          assert {"HTTP/2 500 \r\n" <> _, 0} = curl(url <> "/throw", [])
        end)

      assert log =~
               ~r/running H2Flow.PlugBodyTest.App \(connection #PID<[\d.]+>, stream id 1\) terminated/

      assert log =~ "Server: 127.0.0.1:"
      assert log =~ "Request: GET /raise\n** (RuntimeError) boom"
      assert log =~ "Request: GET /throw\n** (throw) :thrown"
    end

    test "Plug.Exception.status/1 is honoured: Plug.BadRequestError is a 400, not logged",
         %{url: url} do
      log =
        capture_log(fn -> assert {"HTTP/2 400 \r\n" <> _, 0} = curl(url <> "/bad_request", []) end)

      refute log =~ "BadRequestError"
    end

    test "a plug that sends nothing: 500, Plug.Conn.NotSentError", %{url: url} do
      log =
        capture_log(fn -> assert {"HTTP/2 500 \r\n" <> _, 0} = curl(url <> "/not_sent", []) end)

      assert log =~ "Plug.Conn.NotSentError"
    end

    test "a raise after the response started: RST_STREAM INTERNAL_ERROR; the connection " <>
           "carries on",
         %{port: port} do
      conn = connect!(port)

      capture_log(fn ->
        {:ok, conn, id} = H2Client.request(conn, "GET", "/raise_after_chunk")
        assert {:error, conn, {:rst_stream, :internal_error}} = H2Client.read_response(conn, id)
        {:ok, conn, id} = H2Client.request(conn, "GET", "/ok")
        assert {:ok, _conn, %{status: 200, body: "ok"}} = H2Client.read_response(conn, id)
      end)
    end
  end

  defp request_headers(conn, path) do
    [
      {":method", "POST"},
      {":scheme", "http"},
      {":authority", "#{conn.host}:#{conn.port}"},
      {":path", path}
    ]
  end
end
