defmodule H2Flow.ClientNghttpdTest do
  # H2Flow.Client against nghttpd (nghttp2's server, Debian nghttp2-server): downloads of 0 B to
  # 256 MiB from a docroot and uploads echoed back (--echo-upload), with hashes; h2c and TLS;
  # 1,000 concurrent requests against nghttpd's limit of 100; trailers; a server configured to
  # push (the client disabled push, so nothing is pushed).
  use ExUnit.Case, async: true

  alias H2Flow.Client
  alias H2Flow.Test.{ClientHelpers, Nghttpd}

  @moduletag :nghttpd
  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  @sizes [0, 1, 16_384, 65_537, 1_048_576, 16_777_216]

  setup %{tmp_dir: dir} do
    docroot = Path.join(dir, "htdocs")
    File.mkdir_p!(docroot)
    for n <- @sizes, do: Nghttpd.write_pattern!(Path.join(docroot, "#{n}"), n)
    {:ok, docroot: docroot}
  end

  test "downloads and echoed uploads of 0 B to 16 MiB, with hashes, h2c and TLS",
       %{docroot: docroot} do
    for tls <- [false, true] do
      {url, cacerts} = Nghttpd.start!(docroot, tls: tls, args: ["--echo-upload"])
      {:ok, client} = Client.connect(url, if(cacerts, do: [cacerts: cacerts], else: []))

      for n <- @sizes do
        hash = ClientHelpers.pattern_hash(n)

        assert {:ok, %{status: 200, body: body}} =
                 Client.request(client, "GET", "/#{n}", [], nil, max_body: n)

        assert byte_size(body) == n and ClientHelpers.sha256(body) == hash

        upload = n |> ClientHelpers.pattern() |> Enum.join()

        assert {:ok, %{status: 200, body: ^upload}} =
                 Client.request(client, "POST", "/", [], upload, max_body: n)

        {:ok, resp} = Client.stream(client, "PUT", "/", [], ClientHelpers.pattern(n))
        assert {^n, ^hash, _, _} = ClientHelpers.read_all(resp)
      end

      assert {:ok, %{status: 404}} = Client.request(client, "GET", "/missing")
      :ok = Client.close(client)
    end
  end

  @tag :large
  test "256 MiB down and up, with hashes; the download costs few WINDOW_UPDATEs",
       %{docroot: docroot} do
    n = 256 * 1024 * 1024
    Nghttpd.write_pattern!(Path.join(docroot, "large"), n)
    hash = ClientHelpers.pattern_hash(n)
    {url, _} = Nghttpd.start!(docroot, args: ["--echo-upload"])
    {:ok, client} = Client.connect(url)

    {:ok, resp} = Client.stream(client, "GET", "/large")
    assert {^n, ^hash, _, _} = ClientHelpers.read_all(resp)
    stats = Client.stats(client)
    wu = stats.window_update_frames.connection + stats.window_update_frames.stream
    assert wu <= 100, "#{wu} WINDOW_UPDATE frames for a 256 MiB download"

    assert {:ok, %{body: body}} = Client.request(client, "GET", "/large", [], nil, max_body: n)
    assert ClientHelpers.sha256(body) == hash

    {:ok, resp} = Client.stream(client, "POST", "/", [], ClientHelpers.pattern(n))
    assert {^n, ^hash, _, _} = ClientHelpers.read_all(resp)
  end

  test "1,000 concurrent requests against nghttpd's limit of 100", %{docroot: docroot} do
    {url, _} = Nghttpd.start!(docroot, args: ["-m", "100"])
    {:ok, client} = Client.connect(url)
    tasks = for _ <- 1..1_000, do: Task.async(fn -> Client.request(client, "GET", "/65537") end)
    results = Enum.map(tasks, &Task.await(&1, 60_000))

    assert Enum.all?(
             results,
             &match?({:ok, %{status: 200, body: <<_::binary-size(65_537)>>}}, &1)
           )

    stats = Client.stats(client)
    assert stats.peak_open_streams <= 100
    assert stats.streams_reset_by_peer == 0
    assert stats.requests_queued > 0
  end

  test "trailers, and a server configured to push", %{docroot: docroot} do
    {url, _} = Nghttpd.start!(docroot, args: ["--trailer", "x-checksum: abc", "-p/1=/0"])
    {:ok, client} = Client.connect(url)

    assert {:ok, %{status: 200, body: "" <> _, trailers: [{"x-checksum", "abc"}]}} =
             Client.request(client, "GET", "/1")

    assert Client.stats(client).frames_received.push_promise == 0
  end
end
