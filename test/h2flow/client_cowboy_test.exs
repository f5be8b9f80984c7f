defmodule H2Flow.ClientCowboyTest do
  # H2Flow.Client against Cowboy 2.13 (found through COWBOY_EBIN, see test_helper.exs) over h2c:
  # a GET, uploads and downloads of 0 B to 256 MiB with hashes, 1,000 concurrent requests
  # against Cowboy's limit of 100, a handler that crashes mid-response, and the listener
  # stopping with requests in flight.
  use ExUnit.Case, async: false

  alias H2Flow.Client
  alias H2Flow.Test.ClientHelpers

  @moduletag :cowboy
  @moduletag timeout: 300_000

  @compile {:no_warn_undefined, [:cowboy, :cowboy_router, :ranch]}

  defmodule Handler do
    @moduledoc false
    # /bytes/N streams N bytes of the pattern, /sha256 hashes the body read in 1 MB pieces,
    # /sleep/MS answers after MS ms, /crash crashes after the response head.
    @compile {:no_warn_undefined, [:cowboy_req]}

    def init(req, opts) do
      {:ok, route(String.split(:cowboy_req.path(req), "/", trim: true), req), opts}
    end

    defp route(["bytes", n], req) do
      req = :cowboy_req.stream_reply(200, %{"content-length" => n}, req)

      for piece <- ClientHelpers.pattern(String.to_integer(n)),
          do: :cowboy_req.stream_body(piece, :nofin, req)

      :cowboy_req.stream_body("", :fin, req)
      req
    end

    defp route(["sha256"], req) do
      {size, hash, req} = hash(req, 0, :crypto.hash_init(:sha256))
      :cowboy_req.reply(200, %{"x-size" => "#{size}"}, hash, req)
    end

    defp route(["sleep", ms], req) do
      Process.sleep(String.to_integer(ms))
      :cowboy_req.reply(200, %{}, "slept", req)
    end

    defp route(["crash"], req) do
      req = :cowboy_req.stream_reply(200, %{}, req)
      :cowboy_req.stream_body("partial", :nofin, req)
      exit(:crash_on_purpose)
    end

    defp hash(req, size, state) do
      case :cowboy_req.read_body(req, %{length: 1_000_000}) do
        {:ok, data, req} ->
          {size + byte_size(data), ClientHelpers.hex(:crypto.hash_update(state, data)), req}

        {:more, data, req} ->
          hash(req, size + byte_size(data), :crypto.hash_update(state, data))
      end
    end
  end

  setup_all do
    {:ok, _} = Application.ensure_all_started(:cowboy)
    :ok
  end

  setup do
    ref = {__MODULE__, make_ref()}
    dispatch = :cowboy_router.compile([{:_, [{:_, Handler, []}]}])
    # Cowboy's frame-rate flood limit would end the long runs.
    opts = %{
      protocols: [:http2],
      env: %{dispatch: dispatch},
      max_received_frame_rate: {1_000_000, 1_000}
    }

    {:ok, _} = :cowboy.start_clear(ref, [port: 0, ip: {127, 0, 0, 1}], opts)
    on_exit(fn -> :cowboy.stop_listener(ref) end)
    {:ok, client} = Client.connect("http://127.0.0.1:#{:ranch.get_port(ref)}")
    {:ok, ref: ref, client: client}
  end

  test "a GET, and bodies of 0 B to 16 MiB both ways, with hashes", %{client: client} do
    assert {:ok, %{status: 200, body: "slept"}} = Client.request(client, "GET", "/sleep/0")

    for n <- [0, 1, 16_384, 65_537, 1_048_576, 16_777_216] do
      hash = ClientHelpers.pattern_hash(n)
      body = n |> ClientHelpers.pattern() |> Enum.join()

      assert {:ok, %{status: 200, body: ^hash}} =
               Client.request(client, "POST", "/sha256", [], body)

      assert {:ok, %{status: 200, body: down}} =
               Client.request(client, "GET", "/bytes/#{n}", [], nil, max_body: n)

      assert ClientHelpers.sha256(down) == hash
    end
  end

  @tag :large
  test "256 MiB down and up, with hashes", %{client: client} do
    n = 256 * 1024 * 1024
    hash = ClientHelpers.pattern_hash(n)
    {:ok, resp} = Client.stream(client, "GET", "/bytes/#{n}")
    assert {^n, ^hash, _, _} = ClientHelpers.read_all(resp)
    {:ok, resp} = Client.stream(client, "PUT", "/sha256", [], ClientHelpers.pattern(n))
    assert {^hash, _} = ClientHelpers.collect(resp)
  end

  test "1,000 concurrent requests against Cowboy's limit of 100", %{client: client} do
    tasks =
      for _ <- 1..1_000, do: Task.async(fn -> Client.request(client, "GET", "/sleep/10") end)

    assert Enum.all?(Enum.map(tasks, &Task.await(&1, 60_000)), &match?({:ok, %{status: 200}}, &1))
    stats = Client.stats(client)
    assert stats.peak_open_streams == 100
    assert stats.streams_reset_by_peer == 0
    assert stats.requests_queued >= 800
  end

  @tag :capture_log
  test "a handler that crashes mid-response resets its stream only", %{client: client} do
    assert {:error, {:stream_reset, :internal_error}} = Client.request(client, "GET", "/crash")
    assert {:ok, %{status: 200}} = Client.request(client, "GET", "/sleep/0")
  end

  test "the listener stopping with requests in flight: results or errors, no crash",
       %{ref: ref, client: client} do
    pid = GenServer.whereis(client)
    mon = Process.monitor(pid)
    tasks = for _ <- 1..20, do: Task.async(fn -> Client.request(client, "GET", "/sleep/200") end)
    [conn] = :ranch.procs(ref, :connections)
    H2Flow.Test.ServerHelpers.eventually(fn -> Client.stats(client).open_streams == 20 end)
    :ok = :cowboy.stop_listener(ref)
    refute Process.alive?(conn)

    for task <- tasks do
      result = Task.await(task)
      assert result == {:error, :closed} or match?({:ok, %{status: 200}}, result)
    end

    assert_receive {:DOWN, ^mon, _, ^pid, {:shutdown, _}}, 5_000
  end
end
