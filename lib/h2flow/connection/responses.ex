defmodule H2Flow.Connection.Responses do
  @moduledoc false
  # What a stream's handler (or any process holding its request) sends: replies, streamed
  # bodies, trailers, 1xx responses and resets, passed to the engine, with the rest of a body
  # held while the engine says blocked and the sender answered once it is all taken.

  alias H2Flow.Connection.{Spans, Streams}
  alias H2Flow.Connection.Streams.Stream

  import Streams, only: [put: 3, done: 3, answer: 4, answer_sender: 2, date: 0]

  # A response to HEAD has no content (RFC 9110 9.3.2): the headers end the stream, and what
  # the handler sends as body is dropped (its content-length stays, as for GET).
  def request(st, id, s, from, ref, {:reply, status, headers, body}) do
    head? = match?({"HEAD", _}, s.line)
    body = if head?, do: "", else: body
    headers = [{":status", status}, date() | headers]
    s = %{s | status: status}

    case st.mod.reply(st.engine, id, headers, body, true) do
      {:error, :closed} -> done(st, id, %{s | resp: :done})
      sent -> sent(st, id, %{s | resp: :streaming}, {from, ref, body, true}, sent)
    end
  end

  def request(st, id, s, _from, _ref, {:stream_reply, status, headers}) do
    s = %{s | status: status}
    head? = match?({"HEAD", _}, s.line)

    case st.mod.send_headers(st.engine, id, [{":status", status}, date() | headers], head?) do
      :ok -> put(st, id, %{s | resp: if(head?, do: :done, else: :streaming)})
      {:error, :closed} -> done(st, id, %{s | resp: :done})
    end
  end

  def request(st, id, s, _from, _ref, {:inform, status, headers}) do
    _ = st.mod.send_headers(st.engine, id, [{":status", status} | headers], false)
    put(st, id, s)
  end

  def request(st, _id, %Stream{line: {"HEAD", _}}, from, ref, {tag, _, _})
      when tag == :stream_body,
      do: answer(from, ref, :ok, st)

  def request(st, _id, %Stream{line: {"HEAD", _}}, from, ref, {:stream_trailers, _}),
    do: answer(from, ref, :ok, st)

  def request(
        st,
        id,
        %Stream{resp: :streaming, sending: nil} = s,
        from,
        ref,
        {:stream_body, data, fin}
      ),
      do: send_body(st, id, s, {from, ref, data, fin})

  def request(
        st,
        id,
        %Stream{resp: :streaming, sending: nil} = s,
        from,
        ref,
        {:stream_trailers, t}
      ) do
    reply = st.mod.send_headers(st.engine, id, t, true)
    answer(from, ref, reply, put(st, id, %{s | resp: :done}))
  end

  def request(st, id, s, _from, _ref, {:reset, code}) do
    :ok = st.mod.reset_stream(st.engine, id, code)
    s = s |> answer_sender({:error, :closed}) |> H2Flow.Connection.Reads.fail()
    done(st, id, %{s | resp: :done, held: [], read_all: true})
  end

  def request(st, _id, %Stream{resp: :done}, from, ref, _request),
    do: answer(from, ref, {:error, :closed}, st)

  def request(st, _id, _s, from, ref, _request), do: answer(from, ref, {:error, :bad_state}, st)

  # The engine takes at most what its queues have room for; the rest of the data waits here
  # (as a sub-binary of the handler's, not a copy) for {:send_window_open, id}. The caller is
  # answered once all of its data is taken and the engine does not say blocked.
  defp send_body(st, id, s, {_from, _ref, data, fin} = piece) do
    sent(st, id, s, piece, st.mod.send_body(st.engine, id, data, fin))
  end

  defp sent(st, id, s, {from, ref, data, fin}, {:ok, taken, blocked}) do
    rest =
      if taken == byte_size(data), do: "", else: binary_part(data, taken, byte_size(data) - taken)

    resp = if fin and rest == "", do: :done, else: s.resp
    s = if s.span, do: Spans.sent(s, taken), else: s

    cond do
      blocked -> put(st, id, %{s | sending: {from, ref, rest, fin}, resp: resp})
      rest != "" -> send_body(st, id, s, {from, ref, rest, fin})
      true -> answer(from, ref, :ok, done(st, id, %{s | sending: nil, resp: resp}))
    end
  end

  defp sent(st, id, s, {from, ref, _data, _fin}, {:error, :closed}) do
    answer(from, ref, {:error, :closed}, done(st, id, %{s | sending: nil, resp: :done}))
  end

  @doc "The engine has room again for the stream's held data (`{:send_window_open, id}`)."
  def resume(st, id) do
    case st.by_id do
      %{^id => %Stream{sending: {from, ref, "", _fin}} = s} ->
        answer(from, ref, :ok, done(st, id, %{s | sending: nil}))

      %{^id => %Stream{sending: {_, _, _, _} = piece} = s} ->
        send_body(st, id, %{s | sending: nil}, piece)

      _ ->
        st
    end
  end
end
